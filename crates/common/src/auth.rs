//! Identity tokens: EdDSA (Ed25519) JWTs.
//!
//! The users service holds a [`TokenIssuer`] and publishes its public keys as
//! a JWKS document; every service holds a [`TokenVerifier`] and checks tokens
//! itself through the [`AuthUser`] extractor, so a service reached directly is
//! as safe as one reached through the gateway.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};
use futures::future::BoxFuture;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::ConfigError;
use crate::error::Problem;

/// Seconds of clock skew tolerated between services when checking `exp`.
const LEEWAY_SECS: u64 = 5;

/// Where a token issuer gets its signing key and what it writes into tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerSettings {
    /// The `iss` claim.
    pub issuer: String,
    /// The `aud` claim.
    pub audience: String,
    /// Access token lifetime in seconds.
    pub token_ttl_secs: u64,
    /// Ed25519 private key as PKCS#8 PEM text (e.g. from a secret env var).
    pub signing_key_pem: Option<SecretString>,
    /// Path to an Ed25519 private key PEM file (e.g. a mounted secret).
    pub signing_key_file: Option<PathBuf>,
    /// Keys published beside the signing key but never used to sign: paths
    /// of Ed25519 PEM files, private (PKCS#8) or public (SPKI); only their
    /// public parts are published. A rotation puts the next key here before
    /// users signs with it, and the previous key while tokens it signed are
    /// alive (docs/operations.md, "Secrets and key rotation"). Default none;
    /// at most [`MAX_PUBLISHED_KEYS`] together with `published_key_pems`.
    pub published_key_files: Vec<PathBuf>,
    /// The same as [`IssuerSettings::published_key_files`], as PEM texts.
    pub published_key_pems: Vec<SecretString>,
}

/// Most keys published beside the signing key. A rotation needs one (the
/// next or the previous key); a few more allow overlapping rotations, and
/// the bound keeps the key set far below what a verifier reads (64 KiB).
pub const MAX_PUBLISHED_KEYS: usize = 8;

impl Default for IssuerSettings {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            token_ttl_secs: 900,
            signing_key_pem: None,
            signing_key_file: None,
            published_key_files: Vec::new(),
            published_key_pems: Vec::new(),
        }
    }
}

impl IssuerSettings {
    /// Checks what serde cannot (keys under `auth.`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.token_ttl_secs == 0 {
            return Err(ConfigError::invalid(
                "auth.token_ttl_secs",
                "must be at least 1",
            ));
        }
        if self.published_key_files.len() + self.published_key_pems.len() > MAX_PUBLISHED_KEYS {
            return Err(ConfigError::invalid(
                "auth.published_key_files",
                format!("at most {MAX_PUBLISHED_KEYS} keys, together with auth.published_key_pems"),
            ));
        }
        Ok(())
    }
}

/// What a verifying service expects in tokens and how it keeps the issuer's
/// keys; the keys themselves come from the issuer's JWKS.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifierSettings {
    /// The expected `iss` claim.
    pub issuer: String,
    /// The expected `aud` claim.
    pub audience: String,
    /// How often the issuer's key set is fetched again, in milliseconds
    /// (default 60000; 100 to 3600000). Bounds how long a key users has
    /// started to publish stays unknown here, and — with
    /// `key_grace_secs` — how long one it stopped publishing stays trusted.
    /// A token naming an unknown key still fetches at once (at most every 5 s).
    pub jwks_refresh_ms: u64,
    /// How long a key stays trusted after the last fetch that listed it, in
    /// seconds (default 900, the default token lifetime; at most 604800).
    /// Fetches land on any users replica, and replicas in the middle of a
    /// rotation publish different sets: a key one replica still (or
    /// already) publishes must not drop out because a fetch reached another.
    /// Matching the token lifetime means a key dropped from every replica
    /// at once still verifies the tokens it signed until they expire. `0`
    /// trusts exactly the last set fetched.
    pub key_grace_secs: u64,
}

/// Default of [`VerifierSettings::jwks_refresh_ms`]: a minute.
pub const DEFAULT_JWKS_REFRESH_MS: u64 = 60_000;
/// Default of [`VerifierSettings::key_grace_secs`]: the default token lifetime.
pub const DEFAULT_KEY_GRACE_SECS: u64 = 900;
/// Bounds of [`VerifierSettings::jwks_refresh_ms`]: faster only loads users;
/// slower leaves a retired key trusted for hours.
const JWKS_REFRESH_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=3_600_000;
/// Upper bound of [`VerifierSettings::key_grace_secs`]: a week.
const MAX_KEY_GRACE_SECS: u64 = 604_800;

impl Default for VerifierSettings {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            jwks_refresh_ms: DEFAULT_JWKS_REFRESH_MS,
            key_grace_secs: DEFAULT_KEY_GRACE_SECS,
        }
    }
}

impl VerifierSettings {
    /// Checks what serde cannot (keys under `auth.`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !JWKS_REFRESH_MS_RANGE.contains(&self.jwks_refresh_ms) {
            return Err(ConfigError::invalid(
                "auth.jwks_refresh_ms",
                format!(
                    "must be {} to {} milliseconds",
                    JWKS_REFRESH_MS_RANGE.start(),
                    JWKS_REFRESH_MS_RANGE.end()
                ),
            ));
        }
        if self.key_grace_secs > MAX_KEY_GRACE_SECS {
            return Err(ConfigError::invalid(
                "auth.key_grace_secs",
                format!("must be at most {MAX_KEY_GRACE_SECS} seconds"),
            ));
        }
        Ok(())
    }

    /// The refresh interval, clamped into its valid range (for settings
    /// that skipped [`VerifierSettings::validate`]).
    fn refresh_interval(&self) -> Duration {
        Duration::from_millis(
            self.jwks_refresh_ms
                .clamp(*JWKS_REFRESH_MS_RANGE.start(), *JWKS_REFRESH_MS_RANGE.end()),
        )
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(self.key_grace_secs.min(MAX_KEY_GRACE_SECS))
    }
}

/// The default `iss` of ferroshop tokens.
pub const DEFAULT_ISSUER: &str = "ferroshop-users";
/// The default `aud` of ferroshop tokens.
pub const DEFAULT_AUDIENCE: &str = "ferroshop";

/// Why a key or token could not be made or accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The signing key could not be read or parsed.
    #[error("signing key: {0}")]
    Key(String),
    /// The token is missing, malformed, expired, signed by an unknown key or
    /// with another algorithm, or carries the wrong issuer or audience.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token names a key id this verifier does not know (yet).
    #[error("token signed by unknown key {0}")]
    UnknownKey(String),
}

/// The claims of a ferroshop access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The issuer.
    pub iss: String,
    /// The audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// A unique token id.
    pub jti: String,
}

/// A signed access token and its lifetime.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Signs access tokens with one Ed25519 key, and publishes it with the
/// keys configured to be published beside it (a rotation's next or previous
/// key).
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    kid: String,
    jwk: Jwk,
    /// Published, never used to sign; without the signing key's kid and
    /// without duplicates.
    published: Vec<Jwk>,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .field("published", &self.published_kids())
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Builds the issuer from settings: the PEM text, else the PEM file, else
    /// a key generated now (with a warning: tokens then stop verifying when
    /// the process restarts); plus the keys to publish beside it.
    ///
    /// # Errors
    /// [`TokenError::Key`] when a configured key cannot be read or parsed.
    pub fn from_settings(settings: &IssuerSettings) -> Result<Self, TokenError> {
        let pem = match (&settings.signing_key_pem, &settings.signing_key_file) {
            (Some(pem), _) => Some(pem.expose_secret().to_owned()),
            (None, Some(path)) => Some(std::fs::read_to_string(path).map_err(|err| {
                TokenError::Key(format!("cannot read {}: {err}", path.display()))
            })?),
            (None, None) => None,
        };
        let key = match pem {
            Some(pem) => SigningKey::from_pkcs8_pem(&pem).map_err(|err| {
                TokenError::Key(format!("not an Ed25519 PKCS#8 PEM private key: {err}"))
            })?,
            None => {
                tracing::warn!(
                    "no signing key configured (auth.signing_key_pem / auth.signing_key_file); \
                     generated a temporary one: tokens will not survive a restart"
                );
                SigningKey::from_bytes(&rand::random())
            }
        };
        let mut published = Vec::new();
        for path in &settings.published_key_files {
            let pem = std::fs::read_to_string(path).map_err(|err| {
                TokenError::Key(format!(
                    "auth.published_key_files: cannot read {}: {err}",
                    path.display()
                ))
            })?;
            published.push(public_key_from_pem(&pem).map_err(|err| {
                TokenError::Key(format!(
                    "auth.published_key_files: {}: {err}",
                    path.display()
                ))
            })?);
        }
        for (index, pem) in settings.published_key_pems.iter().enumerate() {
            published.push(public_key_from_pem(pem.expose_secret()).map_err(|err| {
                TokenError::Key(format!("auth.published_key_pems[{index}]: {err}"))
            })?);
        }
        Self::new(&key, &published, settings)
    }

    fn new(
        key: &SigningKey,
        published: &[VerifyingKey],
        settings: &IssuerSettings,
    ) -> Result<Self, TokenError> {
        // jsonwebtoken wants the 48-byte PKCS#8 v1 form (no public key), which
        // is also what `openssl genpkey -algorithm ed25519` writes; v2 keys are
        // accepted above and normalised here.
        let der = KeypairBytes {
            secret_key: key.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_der()
        .map_err(|err| TokenError::Key(err.to_string()))?;
        let key = EncodingKey::from_ed_der(der.as_bytes());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA)
            .map_err(|err| TokenError::Key(format!("not an Ed25519 key: {err}")))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|err| TokenError::Key(err.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::EdDSA);
        let mut extra: Vec<Jwk> = Vec::with_capacity(published.len());
        for key in published {
            let jwk = public_jwk(key)?;
            if jwk.common.key_id != Some(kid.clone())
                && !extra
                    .iter()
                    .any(|seen| seen.common.key_id == jwk.common.key_id)
            {
                extra.push(jwk);
            }
        }
        Ok(Self {
            key,
            kid,
            jwk,
            published: extra,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ttl: Duration::from_secs(settings.token_ttl_secs),
        })
    }

    /// Signs a token for `subject`.
    ///
    /// # Errors
    /// [`TokenError::Key`] if signing fails (a broken key).
    pub fn issue(&self, subject: &str) -> Result<IssuedToken, TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        self.issue_at(subject, now, now + self.ttl.as_secs())
    }

    /// Signs a token with explicit times; tests use it to make expired tokens.
    ///
    /// # Errors
    /// As [`TokenIssuer::issue`].
    pub fn issue_at(&self, subject: &str, iat: u64, exp: u64) -> Result<IssuedToken, TokenError> {
        let claims = Claims {
            sub: subject.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp,
            iat,
            jti: Uuid::now_v7().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|err| TokenError::Key(err.to_string()))?;
        Ok(IssuedToken {
            token,
            expires_in: exp.saturating_sub(iat),
        })
    }

    /// The key id (RFC 7638 thumbprint of the public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key ids published beside the signing key's.
    pub fn published_kids(&self) -> Vec<&str> {
        self.published
            .iter()
            .filter_map(|jwk| jwk.common.key_id.as_deref())
            .collect()
    }

    /// The public keys, as served at `/.well-known/jwks.json`: the signing
    /// key first, then the published ones.
    pub fn jwks(&self) -> JwkSet {
        let mut keys = Vec::with_capacity(1 + self.published.len());
        keys.push(self.jwk.clone());
        keys.extend(self.published.iter().cloned());
        JwkSet { keys }
    }

    /// A verifier that trusts this issuer's keys: the signing key and the
    /// published ones, so that a replica verifies the tokens its peers sign
    /// in the middle of a rotation.
    pub fn verifier(&self) -> TokenVerifier {
        let verifier = TokenVerifier::new(&self.issuer, &self.audience);
        // Our own JWKS holds only valid Ed25519 keys.
        verifier.set_keys(&self.jwks());
        verifier
    }
}

/// The public key of an Ed25519 PEM: a private key (PKCS#8 v1 or v2) or a
/// public key (SPKI, `openssl pkey -pubout`).
fn public_key_from_pem(pem: &str) -> Result<VerifyingKey, String> {
    if pem.contains("-----BEGIN PUBLIC KEY-----") {
        VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|err| format!("not an Ed25519 public key PEM: {err}"))
    } else {
        SigningKey::from_pkcs8_pem(pem)
            .map(|key| key.verifying_key())
            .map_err(|err| format!("not an Ed25519 PKCS#8 PEM private key: {err}"))
    }
}

/// The JWK of an Ed25519 public key, with its RFC 7638 thumbprint as `kid`
/// (the same `kid` the key gets when it signs).
fn public_jwk(key: &VerifyingKey) -> Result<Jwk, TokenError> {
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes()),
        }),
    };
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|err| TokenError::Key(err.to_string()))?;
    jwk.common.key_id = Some(kid);
    Ok(jwk)
}

/// A new Ed25519 private key as PKCS#8 PEM text, for a development key file.
///
/// # Errors
/// [`TokenError::Key`] if encoding fails (a broken build).
pub fn generate_signing_key_pem() -> Result<String, TokenError> {
    use base64::Engine;
    let der = KeypairBytes {
        secret_key: rand::random(),
        public_key: None,
    }
    .to_pkcs8_der()
    .map_err(|err| TokenError::Key(err.to_string()))?;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    Ok(format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    ))
}

/// Checks access tokens against a set of public keys (by `kid`), the expected
/// issuer and audience, and the EdDSA algorithm only. Cheap to clone; keys can
/// change while requests are being verified.
///
/// A verifier with a [`KeySource`] keeps the issuer's keys by these rules:
///
/// - it fetches the key set when built, then every
///   [`VerifierSettings::jwks_refresh_ms`] in a background task that ends
///   when the last clone is dropped (or on [`TokenVerifier::stop_refreshing`]),
///   and at once when a token names a key it does not know (at most every 5 s);
/// - a fetch **adds** the keys it lists; it never removes one at once, since
///   it reached one users replica of several, and replicas in the middle of
///   a rotation publish different sets;
/// - a key is dropped by the first fetch that does not list it once no
///   fetch has listed it for [`VerifierSettings::key_grace_secs`]; a failed
///   fetch drops nothing (users being down must not lock everyone out);
/// - a remembered verification counts only while the key that made it is
///   still trusted, so a dropped key takes its tokens with it.
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    keys: RwLock<HashMap<String, TrustedKey>>,
    validation: Validation,
    source: Option<Arc<dyn KeySource>>,
    /// How long a key absent from fetches stays trusted.
    grace: Duration,
    /// When keys were last fetched; held across a fetch so concurrent
    /// requests with an unknown `kid` cause one fetch, not one each.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Claims of tokens already verified, by SHA-256 of the token.
    verified: moka::sync::Cache<[u8; 32], Remembered>,
    /// Numbers each key as it becomes trusted; see [`Remembered`].
    generations: AtomicU64,
    /// Ends the refresh task.
    stop: CancellationToken,
}

impl Drop for VerifierInner {
    fn drop(&mut self) {
        // The last clone is gone: end the refresh task now rather than at
        // its next tick.
        self.stop.cancel();
    }
}

/// A trusted public key.
struct TrustedKey {
    key: DecodingKey,
    /// The public key as published (`x`), to notice a `kid` reused for
    /// another key.
    public: String,
    /// When a fetch last listed it (or it was set).
    last_seen: Instant,
    /// Unique per key per verifier.
    generation: u64,
}

/// A remembered verification: the claims, and the generation of the key
/// that verified them. A hit counts only while a key of that generation is
/// trusted, which also covers a verification that finished just after its
/// key was dropped.
#[derive(Clone)]
struct Remembered {
    claims: Claims,
    generation: u64,
}

/// Most verified tokens remembered. A token comes back on every request of
/// a session, and again at every service on its path; remembering it turns
/// an Ed25519 verification (~90 µs measured in docs/benchmarks.md) into a
/// hash lookup. Only tokens that verified are remembered, their expiry is
/// checked on every hit, and so is their key's trust; at the bound, moka's
/// admission and eviction policy (TinyLFU) decides which are kept.
const VERIFIED_CAPACITY: u64 = 10_000;

/// Where a verifier fetches the current public keys: the users service's
/// JWKS, reached through discovery.
pub trait KeySource: Send + Sync + 'static {
    /// Fetches the key set.
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>>;
}

/// Shortest time between two key fetches caused by unknown `kid`s: a flood
/// of tokens with made-up `kid`s must not become a flood of JWKS requests.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.kids())
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier with no keys yet, expecting `issuer` and `audience`; keys
    /// come from [`TokenVerifier::set_keys`] or [`TokenVerifier::merge_keys`].
    pub fn new(issuer: &str, audience: &str) -> Self {
        Self::build(
            issuer,
            audience,
            None,
            Duration::from_secs(DEFAULT_KEY_GRACE_SECS),
        )
    }

    /// [`TokenVerifier::from_settings`] with the default refresh interval and
    /// grace period.
    pub fn with_source(issuer: &str, audience: &str, source: Arc<dyn KeySource>) -> Self {
        Self::from_settings(
            &VerifierSettings {
                issuer: issuer.to_owned(),
                audience: audience.to_owned(),
                ..VerifierSettings::default()
            },
            source,
        )
    }

    /// A verifier that keeps the keys of `source` by the rules on
    /// [`TokenVerifier`]. Starts the refresh task when called within a tokio
    /// runtime (without one, keys are fetched on demand only).
    pub fn from_settings(settings: &VerifierSettings, source: Arc<dyn KeySource>) -> Self {
        let verifier = Self::build(
            &settings.issuer,
            &settings.audience,
            Some(source),
            settings.grace(),
        );
        verifier.spawn_refresh(settings.refresh_interval());
        verifier
    }

    fn build(
        issuer: &str,
        audience: &str,
        source: Option<Arc<dyn KeySource>>,
        grace: Duration,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            inner: Arc::new(VerifierInner {
                keys: RwLock::new(HashMap::new()),
                validation,
                source,
                grace,
                last_refresh: tokio::sync::Mutex::new(None),
                verified: moka::sync::Cache::new(VERIFIED_CAPACITY),
                generations: AtomicU64::new(0),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// Fetches the keys now and then every `every`, until the last clone is
    /// dropped or [`TokenVerifier::stop_refreshing`].
    fn spawn_refresh(&self, every: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no tokio runtime: token keys are fetched on demand only");
            return;
        };
        // A weak reference, so the task does not keep the verifier alive.
        let verifier: Weak<VerifierInner> = Arc::downgrade(&self.inner);
        let stop = self.inner.stop.clone();
        runtime.spawn(async move {
            loop {
                {
                    let Some(inner) = verifier.upgrade() else {
                        return;
                    };
                    let verifier = Self { inner };
                    tokio::select! {
                        () = stop.cancelled() => return,
                        result = verifier.fetch(false) => if let Err(err) = result {
                            if verifier.key_count() == 0 {
                                // Usual while users is still starting.
                                tracing::debug!(error = %err, "cannot fetch token keys yet");
                            } else {
                                tracing::warn!(error = %err, "cannot refresh token keys");
                            }
                        },
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }

    /// Ends the periodic refresh (a token naming an unknown key still
    /// fetches). Dropping the last clone does the same.
    pub fn stop_refreshing(&self) {
        self.inner.stop.cancel();
    }

    /// Fetches the keys from the source now, unless that happened less than
    /// 5 s ago, and merges them in; returns how many keys are trusted
    /// afterwards.
    ///
    /// # Errors
    /// [`TokenError::Key`] when there is no source or the fetch fails (the
    /// keys held so far stay in use).
    pub async fn refresh(&self) -> Result<usize, TokenError> {
        self.fetch(true).await
    }

    async fn fetch(&self, rate_limited: bool) -> Result<usize, TokenError> {
        let source = self
            .inner
            .source
            .as_ref()
            .ok_or_else(|| TokenError::Key("no key source".to_owned()))?;
        let mut last = self.inner.last_refresh.lock().await;
        if rate_limited {
            // Only fetches on demand (a token naming an unknown key) count
            // against the limit: the timer's fetches, failed ones above all
            // (users still starting), must not make the first tokens wait.
            if last.is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL) {
                return Ok(self.key_count());
            }
            *last = Some(Instant::now());
        }
        let jwks = source.fetch().await.map_err(TokenError::Key)?;
        Ok(self.merge_keys_at(&jwks, Instant::now()))
    }

    /// How many keys are trusted.
    pub fn key_count(&self) -> usize {
        self.read_keys().len()
    }

    /// The ids of the trusted keys, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.read_keys().keys().cloned().collect();
        kids.sort_unstable();
        kids
    }

    /// Like [`TokenVerifier::verify`], but a token signed by a key not known
    /// yet first refreshes the keys from the source (key rotation, or a
    /// service that started before users).
    ///
    /// # Errors
    /// As [`TokenVerifier::verify`].
    pub async fn verify_fresh(&self, token: &str) -> Result<Claims, TokenError> {
        match self.verify(token) {
            Err(TokenError::UnknownKey(kid)) if self.inner.source.is_some() => {
                if let Err(err) = self.refresh().await {
                    tracing::warn!(error = %err, "cannot refresh token keys");
                    return Err(TokenError::UnknownKey(kid));
                }
                self.verify(token)
            }
            other => other,
        }
    }

    /// Replaces the trusted keys with the Ed25519 keys of `jwks` that carry a
    /// `kid`; returns how many were accepted. For keys configured by hand;
    /// fetched keys are merged ([`TokenVerifier::merge_keys`]).
    pub fn set_keys(&self, jwks: &JwkSet) -> usize {
        let now = Instant::now();
        let keys: HashMap<String, TrustedKey> = ed25519_keys(jwks)
            .map(|(kid, public, key)| {
                let key = self.trusted(key, public, now);
                (kid, key)
            })
            .collect();
        let count = keys.len();
        *self.write_keys() = keys;
        // The keys' generations are new: nothing remembered counts any more.
        self.inner.verified.invalidate_all();
        count
    }

    /// Merges a fetched key set: trusts its Ed25519 keys (those with a
    /// `kid`) as seen now, and drops the keys no fetch has listed for longer
    /// than the grace period. Returns how many keys are trusted afterwards.
    pub fn merge_keys(&self, jwks: &JwkSet) -> usize {
        self.merge_keys_at(jwks, Instant::now())
    }

    fn merge_keys_at(&self, jwks: &JwkSet, now: Instant) -> usize {
        let mut keys = self.write_keys();
        for (kid, public, key) in ed25519_keys(jwks) {
            match keys.get_mut(&kid) {
                Some(known) if known.public == public => {
                    known.last_seen = known.last_seen.max(now);
                }
                known => {
                    if known.is_some() {
                        tracing::warn!(%kid, "token key id now names another key; trusting the new one");
                    } else {
                        tracing::info!(%kid, "trusting a new token key");
                    }
                    let key = self.trusted(key, public, now);
                    keys.insert(kid, key);
                }
            }
        }
        let grace = self.inner.grace;
        keys.retain(|kid, key| {
            let absent = now.saturating_duration_since(key.last_seen);
            let keep = absent <= grace;
            if !keep {
                tracing::info!(%kid, absent_secs = absent.as_secs(), "no longer trusting a token key: users stopped publishing it");
            }
            keep
        });
        keys.len()
    }

    fn trusted(&self, key: DecodingKey, public: String, now: Instant) -> TrustedKey {
        TrustedKey {
            key,
            public,
            last_seen: now,
            generation: self.inner.generations.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, TrustedKey>> {
        match self.inner.keys.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn write_keys(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, TrustedKey>> {
        match self.inner.keys.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Verifies `token` and returns its claims.
    ///
    /// # Errors
    /// [`TokenError::UnknownKey`] for a `kid` not in the key set (the caller
    /// may refresh its keys and retry); [`TokenError::Invalid`] otherwise.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(claims) = self.remembered(&digest, now) {
            return Ok(claims);
        }
        let (claims, generation) = self.verify_signature(token)?;
        self.inner.verified.insert(
            digest,
            Remembered {
                claims: claims.clone(),
                generation,
            },
        );
        Ok(claims)
    }

    /// The remembered claims of the token with this digest, while unexpired
    /// by the same rule (and leeway) as a full verification and while the
    /// key that verified it is trusted.
    fn remembered(&self, digest: &[u8; 32], now: u64) -> Option<Claims> {
        let remembered = self.inner.verified.get(digest)?;
        if remembered.claims.exp.saturating_add(LEEWAY_SECS) < now {
            return None;
        }
        let trusted = self
            .read_keys()
            .values()
            .any(|key| key.generation == remembered.generation);
        if !trusted {
            self.inner.verified.invalidate(digest);
            return None;
        }
        Some(remembered.claims)
    }

    fn verify_signature(&self, token: &str) -> Result<(Claims, u64), TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| TokenError::Invalid(err.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("no key id".to_owned()))?;
        let keys = self.read_keys();
        let key = keys
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
        jsonwebtoken::decode::<Claims>(token, &key.key, &self.inner.validation)
            .map(|data| (data.claims, key.generation))
            .map_err(|err| TokenError::Invalid(err.to_string()))
    }
}

/// The Ed25519 keys of a key set that carry a `kid`: (kid, public key as
/// published, decoding key). Keys of other types or algorithms are ignored.
fn ed25519_keys(jwks: &JwkSet) -> impl Iterator<Item = (String, String, DecodingKey)> + '_ {
    jwks.keys.iter().filter_map(|jwk| {
        let kid = jwk.common.key_id.clone()?;
        if jwk
            .common
            .key_algorithm
            .is_some_and(|alg| alg != KeyAlgorithm::EdDSA)
        {
            return None;
        }
        let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
            return None;
        };
        if params.curve != EllipticCurve::Ed25519 {
            return None;
        }
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some((kid, params.x.clone(), key))
    })
}

/// The authenticated caller of a request, from its `Authorization: Bearer`
/// token. Rejects with 401 problem+json when the token is missing, malformed,
/// expired, tampered with, signed with another algorithm or by an unknown key.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user id (the token's subject).
    pub user_id: Uuid,
    /// The raw bearer token, for calls made on the user's behalf.
    pub token: String,
}

impl<S> FromRequestParts<S> for AuthUser
where
    TokenVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(|| unauthorized("missing bearer token"))?;
        let verifier = TokenVerifier::from_ref(state);
        let claims = verifier.verify_fresh(token).await.map_err(|err| {
            tracing::debug!(error = %err, "rejected token");
            unauthorized("invalid or expired token")
        })?;
        let user_id =
            Uuid::parse_str(&claims.sub).map_err(|_| unauthorized("invalid token subject"))?;
        Ok(Self {
            user_id,
            token: token.to_owned(),
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|token| !token.is_empty())
}

/// 401 problem+json with a `WWW-Authenticate: Bearer` challenge.
pub fn unauthorized(detail: &str) -> Problem {
    Problem::with_detail(StatusCode::UNAUTHORIZED, detail)
        .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn issuer() -> TokenIssuer {
        TokenIssuer::from_settings(&IssuerSettings::default()).expect("generated key")
    }

    #[test]
    fn a_token_round_trips() {
        let issuer = issuer();
        let token = issuer
            .issue("0190c6c8-0000-7000-8000-000000000001")
            .expect("signed");
        let claims = issuer.verifier().verify(&token.token).expect("valid");
        assert_eq!(claims.sub, "0190c6c8-0000-7000-8000-000000000001");
        assert_eq!(claims.iss, DEFAULT_ISSUER);
        assert_eq!(token.expires_in, 900);
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let issuer = issuer();
        let now = jsonwebtoken::get_current_timestamp();
        let token = issuer.issue_at("u", now - 3600, now - 60).expect("signed");
        assert!(matches!(
            issuer.verifier().verify(&token.token),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn tokens_from_another_key_are_rejected() {
        let token = issuer().issue("u").expect("signed");
        // Same kid is impossible (thumbprints differ), so this is an unknown key.
        assert!(matches!(
            issuer().verifier().verify(&token.token),
            Err(TokenError::UnknownKey(_))
        ));
    }

    #[test]
    fn tampered_payloads_are_rejected() {
        let issuer = issuer();
        let token = issuer.issue("alice").expect("signed").token;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let payload =
            String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("utf8");
        parts[1] = URL_SAFE_NO_PAD.encode(payload.replace("alice", "mallory"));
        assert!(issuer.verifier().verify(&parts.join(".")).is_err());
    }

    #[test]
    fn alg_none_and_hmac_tokens_are_rejected() {
        let issuer = issuer();
        let verifier = issuer.verifier();
        let now = jsonwebtoken::get_current_timestamp();
        let claims = format!(
            r#"{{"sub":"u","iss":"{DEFAULT_ISSUER}","aud":"{DEFAULT_AUDIENCE}","exp":{},"iat":{now},"jti":"x"}}"#,
            now + 600
        );
        let header = format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, issuer.kid());
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(&claims)
        );
        assert!(verifier.verify(&none).is_err());

        // An HS256 token "signed" with the public key bytes (the classic
        // algorithm-confusion attack).
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(issuer.kid().to_owned());
        let public = serde_json::to_vec(&issuer.jwks()).expect("json");
        let claims: Claims = serde_json::from_str(&claims).expect("claims");
        let forged =
            jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(&public)).expect("hmac");
        assert!(verifier.verify(&forged).is_err());
    }

    #[test]
    fn wrong_audience_is_rejected() {
        let issuer = issuer();
        let token = issuer.issue("u").expect("signed");
        let other = TokenVerifier::new(DEFAULT_ISSUER, "someone-else");
        other.set_keys(&issuer.jwks());
        assert!(other.verify(&token.token).is_err());
    }

    #[test]
    fn jwks_publish_an_ed25519_key_with_kid() {
        let jwks = serde_json::to_value(issuer().jwks()).expect("json");
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert!(key["kid"].as_str().is_some_and(|kid| kid.len() == 43));
        assert!(
            key.get("d").is_none(),
            "private part must never be published"
        );
    }

    struct CountingSource {
        jwks: JwkSet,
        fetches: std::sync::atomic::AtomicUsize,
    }

    impl KeySource for CountingSource {
        fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>> {
            self.fetches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { Ok(self.jwks.clone()) })
        }
    }

    #[tokio::test]
    async fn unknown_kids_refresh_from_the_source_at_most_every_few_seconds() {
        let issuer = issuer();
        let source = Arc::new(CountingSource {
            jwks: issuer.jwks(),
            fetches: Default::default(),
        });
        let verifier = on_demand(source.clone(), GRACE);
        assert_eq!(verifier.key_count(), 0);
        let token = issuer.issue("u").expect("signed").token;
        assert!(matches!(
            verifier.verify(&token),
            Err(TokenError::UnknownKey(_))
        ));
        assert!(
            verifier.verify_fresh(&token).await.is_ok(),
            "fetched the key on demand"
        );
        assert_eq!(source.fetches.load(std::sync::atomic::Ordering::SeqCst), 1);

        let stranger = super::TokenIssuer::from_settings(&IssuerSettings::default()).expect("key");
        let foreign = stranger.issue("u").expect("signed").token;
        for _ in 0..10 {
            assert!(verifier.verify_fresh(&foreign).await.is_err());
        }
        assert_eq!(
            source.fetches.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "no fetch storm"
        );
    }

    #[test]
    fn remembered_tokens_expire_and_are_forgotten_when_keys_change() {
        let issuer = issuer();
        let verifier = issuer.verifier();
        let token = issuer.issue("u").expect("signed").token;
        let claims = verifier.verify(&token).expect("valid");
        assert_eq!(verifier.verify(&token).expect("remembered"), claims);

        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        assert!(verifier.remembered(&digest, claims.exp).is_some());
        assert!(
            verifier
                .remembered(&digest, claims.exp + LEEWAY_SECS + 1)
                .is_none(),
            "a remembered token still expires"
        );

        verifier.set_keys(
            &super::TokenIssuer::from_settings(&IssuerSettings::default())
                .expect("key")
                .jwks(),
        );
        assert!(
            verifier.remembered(&digest, claims.iat).is_none(),
            "new keys forget old tokens"
        );
        assert!(matches!(
            verifier.verify(&token),
            Err(TokenError::UnknownKey(_))
        ));
    }

    #[test]
    fn only_verified_tokens_are_remembered() {
        let issuer = issuer();
        let verifier = issuer.verifier();
        let token = issuer.issue("alice").expect("signed").token;
        let forged = format!("{}x", token);
        for _ in 0..2 {
            assert!(
                verifier.verify(&forged).is_err(),
                "a bad token fails every time"
            );
        }
        verifier.inner.verified.run_pending_tasks();
        assert_eq!(verifier.inner.verified.entry_count(), 0);
    }

    #[test]
    fn configured_pem_keys_are_used_and_stable() {
        // A PKCS#8 v2 key (with the public key) must be accepted too.
        let der = SigningKey::from_bytes(&[7u8; 32])
            .to_pkcs8_der()
            .expect("der");
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let settings = IssuerSettings {
            signing_key_pem: Some(SecretString::from(pem)),
            ..IssuerSettings::default()
        };
        let a = TokenIssuer::from_settings(&settings).expect("a");
        let b = TokenIssuer::from_settings(&settings).expect("b");
        assert_eq!(a.kid(), b.kid());
        let token = a.issue("u").expect("signed");
        assert!(b.verifier().verify(&token.token).is_ok());
    }

    #[test]
    fn generated_pem_keys_load() {
        let pem = generate_signing_key_pem().expect("pem");
        let settings = IssuerSettings {
            signing_key_pem: Some(SecretString::from(pem)),
            ..IssuerSettings::default()
        };
        let issuer = TokenIssuer::from_settings(&settings).expect("loads");
        assert!(
            issuer
                .verifier()
                .verify(&issuer.issue("u").expect("signed").token)
                .is_ok()
        );
    }

    #[test]
    fn garbage_pem_is_a_key_error() {
        let settings = IssuerSettings {
            signing_key_pem: Some(SecretString::from("not a key".to_owned())),
            ..IssuerSettings::default()
        };
        assert!(matches!(
            TokenIssuer::from_settings(&settings),
            Err(TokenError::Key(_))
        ));
    }

    /// The grace period of the merge tests.
    const GRACE: Duration = Duration::from_secs(10);

    /// A verifier fetching from `source` on demand only (no refresh task),
    /// so that tests control every fetch.
    fn on_demand(source: Arc<dyn KeySource>, grace: Duration) -> TokenVerifier {
        TokenVerifier::build(DEFAULT_ISSUER, DEFAULT_AUDIENCE, Some(source), grace)
    }

    /// A verifier with no source, whose keys only `merge_keys_at` changes.
    fn merging(grace: Duration) -> TokenVerifier {
        TokenVerifier::build(DEFAULT_ISSUER, DEFAULT_AUDIENCE, None, grace)
    }

    fn set(issuers: &[&TokenIssuer]) -> JwkSet {
        JwkSet {
            keys: issuers
                .iter()
                .flat_map(|issuer| issuer.jwks().keys)
                .collect(),
        }
    }

    fn pem_of(seed: u8) -> String {
        let der = SigningKey::from_bytes(&[seed; 32])
            .to_pkcs8_der()
            .expect("der");
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    fn issuer_with(signing: &str, published: &[String]) -> TokenIssuer {
        TokenIssuer::from_settings(&IssuerSettings {
            signing_key_pem: Some(SecretString::from(signing.to_owned())),
            published_key_pems: published
                .iter()
                .map(|pem| SecretString::from(pem.clone()))
                .collect(),
            ..IssuerSettings::default()
        })
        .expect("issuer")
    }

    #[test]
    fn published_keys_are_served_and_trusted_but_never_sign() {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        let (a, b) = (pem_of(1), pem_of(2));
        let alone_b = issuer_with(&b, &[]);
        let b_public = SigningKey::from_bytes(&[2; 32])
            .verifying_key()
            .to_public_key_pem(Default::default())
            .expect("spki pem");
        // The private and the public form of one key, and the signing key
        // itself: published once, the signing key not again.
        let issuer = issuer_with(&a, &[b.clone(), b_public, a.clone()]);
        assert_eq!(issuer.published_kids(), vec![alone_b.kid()]);

        let jwks = serde_json::to_value(issuer.jwks()).expect("json");
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0]["kid"], issuer.kid(), "the signing key comes first");
        assert_eq!(keys[1]["kid"], alone_b.kid(), "same kid as when it signs");
        for key in keys {
            assert_eq!(key["kty"], "OKP");
            assert_eq!(key["crv"], "Ed25519");
            assert_eq!(key["alg"], "EdDSA");
            assert_eq!(key["use"], "sig");
            assert!(key.get("d").is_none(), "private parts are never published");
        }

        let token = issuer.issue("u").expect("signed").token;
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(
            header.kid.as_deref(),
            Some(issuer.kid()),
            "signs with its own key"
        );
        let verifier = issuer.verifier();
        assert!(verifier.verify(&token).is_ok());
        assert!(
            verifier
                .verify(&alone_b.issue("u").expect("signed").token)
                .is_ok(),
            "a peer signing with the published key is trusted"
        );
    }

    #[test]
    fn bad_published_keys_are_key_errors_naming_the_setting() {
        let settings = IssuerSettings {
            published_key_pems: vec![SecretString::from("not a key".to_owned())],
            ..IssuerSettings::default()
        };
        let err = TokenIssuer::from_settings(&settings).expect_err("bad pem");
        assert!(
            err.to_string().contains("auth.published_key_pems[0]"),
            "{err}"
        );

        let settings = IssuerSettings {
            published_key_files: vec![PathBuf::from("/nonexistent/next.pem")],
            ..IssuerSettings::default()
        };
        let err = TokenIssuer::from_settings(&settings).expect_err("missing file");
        assert!(
            err.to_string().contains("auth.published_key_files"),
            "{err}"
        );
    }

    #[test]
    fn settings_are_validated_with_their_keys() {
        IssuerSettings::default().validate().expect("defaults");
        let err = IssuerSettings {
            published_key_files: vec![PathBuf::from("k.pem"); MAX_PUBLISHED_KEYS + 1],
            ..IssuerSettings::default()
        }
        .validate()
        .expect_err("too many");
        assert!(
            err.to_string().contains("auth.published_key_files"),
            "{err}"
        );

        let defaults = VerifierSettings::default();
        defaults.validate().expect("defaults");
        assert_eq!(defaults.refresh_interval(), Duration::from_secs(60));
        assert_eq!(defaults.grace(), Duration::from_secs(900));
        for (settings, key) in [
            (
                VerifierSettings {
                    jwks_refresh_ms: 99,
                    ..VerifierSettings::default()
                },
                "auth.jwks_refresh_ms",
            ),
            (
                VerifierSettings {
                    jwks_refresh_ms: 3_600_001,
                    ..VerifierSettings::default()
                },
                "auth.jwks_refresh_ms",
            ),
            (
                VerifierSettings {
                    key_grace_secs: 604_801,
                    ..VerifierSettings::default()
                },
                "auth.key_grace_secs",
            ),
        ] {
            let err = settings.validate().expect_err(key);
            assert!(err.to_string().contains(key), "{err}");
        }
        let unchecked = VerifierSettings {
            jwks_refresh_ms: 0,
            ..VerifierSettings::default()
        };
        assert_eq!(unchecked.refresh_interval(), Duration::from_millis(100));
    }

    #[test]
    fn verifier_and_issuer_settings_load_from_env() {
        #[derive(Deserialize)]
        struct Both {
            verifier: VerifierSettings,
            issuer: IssuerSettings,
        }
        let both: Both = crate::config::load_from(
            "[verifier]\n[issuer]\n",
            &[
                ("SHOP_VERIFIER__JWKS_REFRESH_MS", "5000"),
                ("SHOP_VERIFIER__KEY_GRACE_SECS", "1200"),
                (
                    "SHOP_ISSUER__PUBLISHED_KEY_FILES",
                    "[/run/secrets/next.pem, /run/secrets/previous.pem]",
                ),
            ],
        )
        .expect("loads");
        assert_eq!(both.verifier.jwks_refresh_ms, 5000);
        assert_eq!(both.verifier.key_grace_secs, 1200);
        assert_eq!(
            both.issuer.published_key_files,
            vec![
                PathBuf::from("/run/secrets/next.pem"),
                PathBuf::from("/run/secrets/previous.pem")
            ]
        );
    }

    #[test]
    fn a_fetch_adds_keys_and_a_key_absent_past_the_grace_is_dropped() {
        let (a, b) = (issuer(), issuer());
        let verifier = merging(GRACE);
        let t0 = Instant::now();
        let at = |secs: f64| t0 + Duration::from_secs_f64(secs);

        assert_eq!(verifier.merge_keys_at(&set(&[&a]), at(0.0)), 1);
        assert_eq!(verifier.merge_keys_at(&set(&[&a, &b]), at(1.0)), 2);
        let token_b = b.issue("u").expect("signed").token;
        assert!(verifier.verify(&token_b).is_ok());

        // Fetches that reach a replica not publishing b yet (or any more)
        // keep it while it was listed within the grace period…
        for secs in [2.0, 5.0, 11.0] {
            assert_eq!(
                verifier.merge_keys_at(&set(&[&a]), at(secs)),
                2,
                "at {secs} s"
            );
            assert!(verifier.verify(&token_b).is_ok(), "at {secs} s");
        }
        // …and drop it once it was not for longer.
        assert_eq!(verifier.merge_keys_at(&set(&[&a]), at(11.5)), 1);
        assert_eq!(verifier.kids(), vec![a.kid().to_owned()]);
        assert!(
            matches!(verifier.verify(&token_b), Err(TokenError::UnknownKey(_))),
            "a remembered token goes with its key"
        );
        assert!(
            verifier
                .verify(&a.issue("u").expect("signed").token)
                .is_ok()
        );
    }

    #[test]
    fn a_key_listed_again_within_the_grace_starts_a_new_grace() {
        let (a, b) = (issuer(), issuer());
        let verifier = merging(GRACE);
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        verifier.merge_keys_at(&set(&[&a, &b]), at(0));
        verifier.merge_keys_at(&set(&[&a]), at(5));
        verifier.merge_keys_at(&set(&[&b]), at(9));
        // a was last listed at 5 s, b at 9 s.
        assert_eq!(verifier.merge_keys_at(&JwkSet { keys: vec![] }, at(15)), 2);
        assert_eq!(verifier.merge_keys_at(&JwkSet { keys: vec![] }, at(16)), 1);
        assert_eq!(verifier.kids(), vec![b.kid().to_owned()]);
        assert_eq!(verifier.merge_keys_at(&JwkSet { keys: vec![] }, at(20)), 0);
    }

    #[test]
    fn without_a_grace_the_last_fetch_is_the_key_set() {
        let (a, b) = (issuer(), issuer());
        let verifier = merging(Duration::ZERO);
        let t0 = Instant::now();
        verifier.merge_keys_at(&set(&[&a, &b]), t0);
        assert_eq!(
            verifier.merge_keys_at(&set(&[&b]), t0 + Duration::from_millis(1)),
            1
        );
        assert_eq!(verifier.kids(), vec![b.kid().to_owned()]);
    }

    #[test]
    fn a_dropped_key_forgets_only_its_own_remembered_tokens() {
        let (a, b) = (issuer(), issuer());
        let verifier = merging(GRACE);
        let t0 = Instant::now();
        verifier.merge_keys_at(&set(&[&a, &b]), t0);
        let (token_a, token_b) = (
            a.issue("u").expect("signed").token,
            b.issue("u").expect("signed").token,
        );
        let claims_a = verifier.verify(&token_a).expect("a");
        let claims_b = verifier.verify(&token_b).expect("b");
        let digest = |token: &str| -> [u8; 32] { Sha256::digest(token.as_bytes()).into() };
        verifier.merge_keys_at(&set(&[&a]), t0 + GRACE + Duration::from_secs(1));
        assert_eq!(
            verifier.remembered(&digest(&token_a), claims_a.iat),
            Some(claims_a),
            "tokens of a key still trusted stay remembered"
        );
        assert!(
            verifier
                .remembered(&digest(&token_b), claims_b.iat)
                .is_none()
        );
    }

    #[test]
    fn a_kid_naming_another_key_replaces_it_and_its_tokens() {
        let (a, b) = (issuer(), issuer());
        let verifier = merging(GRACE);
        let t0 = Instant::now();
        verifier.merge_keys_at(&set(&[&a]), t0);
        let token_a = a.issue("u").expect("signed").token;
        assert!(verifier.verify(&token_a).is_ok());
        let mut impostor = b.jwks();
        impostor.keys[0].common.key_id = Some(a.kid().to_owned());
        assert_eq!(verifier.merge_keys_at(&impostor, t0), 1);
        assert!(
            matches!(verifier.verify(&token_a), Err(TokenError::Invalid(_))),
            "neither remembered nor verified by the new key"
        );
    }

    #[test]
    fn only_ed25519_keys_with_a_kid_are_trusted() {
        let a = issuer();
        let mut jwks = a.jwks();
        let mut no_kid = jwks.keys[0].clone();
        no_kid.common.key_id = None;
        let hmac: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "oct", "kid": "hmac", "k": "c2VjcmV0"
        }))
        .expect("oct jwk");
        let mut other_alg = jwks.keys[0].clone();
        other_alg.common.key_id = Some("rs".to_owned());
        other_alg.common.key_algorithm = Some(KeyAlgorithm::RS256);
        jwks.keys.extend([no_kid, hmac, other_alg]);
        let verifier = merging(GRACE);
        assert_eq!(verifier.set_keys(&jwks), 1);
        assert_eq!(verifier.merge_keys(&jwks), 1);
        assert_eq!(verifier.kids(), vec![a.kid().to_owned()]);
    }

    /// Answers like replicas behind round robin: each fetch the next set.
    struct RotatingSource {
        sets: Vec<Result<JwkSet, String>>,
        fetches: std::sync::atomic::AtomicUsize,
    }

    impl KeySource for RotatingSource {
        fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>> {
            let n = self
                .fetches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = self.sets[n % self.sets.len()].clone();
            Box::pin(async move { answer })
        }
    }

    #[tokio::test]
    async fn a_failed_timer_fetch_does_not_hold_back_the_first_token() {
        let users = issuer();
        let source = Arc::new(RotatingSource {
            // The timer's first fetch fails (users not discovered yet); the
            // next one, on demand, answers.
            sets: vec![Err("no instance of users".to_owned()), Ok(set(&[&users]))],
            fetches: Default::default(),
        });
        let verifier = on_demand(source.clone(), GRACE);
        assert!(verifier.fetch(false).await.is_err());
        let token = users.issue("u").expect("signed").token;
        assert!(
            verifier.verify_fresh(&token).await.is_ok(),
            "the token waited for the timer's failed fetch"
        );
    }

    #[tokio::test]
    async fn fetches_alternating_between_replicas_keep_every_published_key() {
        let (old, new) = (issuer(), issuer());
        let source = Arc::new(RotatingSource {
            // One replica already publishes the new key, the other not yet.
            sets: vec![Ok(set(&[&old, &new])), Ok(set(&[&old]))],
            fetches: Default::default(),
        });
        let verifier = on_demand(source.clone(), GRACE);
        let token = new.issue("u").expect("signed").token;
        for round in 0..6 {
            *verifier.inner.last_refresh.lock().await = None;
            assert_eq!(
                verifier.refresh().await.expect("fetched"),
                2,
                "round {round}"
            );
            assert!(verifier.verify(&token).is_ok(), "round {round}");
        }
        assert_eq!(source.fetches.load(std::sync::atomic::Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn a_failed_fetch_drops_nothing() {
        let a = issuer();
        let source = Arc::new(RotatingSource {
            sets: vec![Err("users is down".to_owned())],
            fetches: Default::default(),
        });
        // No grace at all: only a successful fetch may drop a key.
        let verifier = on_demand(source, Duration::ZERO);
        verifier.merge_keys(&a.jwks());
        assert!(matches!(verifier.refresh().await, Err(TokenError::Key(_))));
        assert_eq!(verifier.kids(), vec![a.kid().to_owned()]);
        assert!(
            verifier
                .verify(&a.issue("u").expect("signed").token)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn keys_refresh_on_a_timer_until_the_verifier_is_dropped_or_stopped() {
        let a = issuer();
        let settings = VerifierSettings {
            jwks_refresh_ms: 100,
            ..VerifierSettings::default()
        };
        let fetches =
            |source: &Arc<CountingSource>| source.fetches.load(std::sync::atomic::Ordering::SeqCst);
        let new_source = || {
            Arc::new(CountingSource {
                jwks: a.jwks(),
                fetches: Default::default(),
            })
        };

        let source = new_source();
        let verifier = TokenVerifier::from_settings(&settings, source.clone());
        tokio::time::sleep(Duration::from_millis(550)).await;
        assert!(fetches(&source) >= 3, "{} fetches", fetches(&source));
        assert_eq!(verifier.key_count(), 1, "the first fetch happens at start");
        let clone = verifier.clone();
        drop(verifier);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(Arc::strong_count(&source) > 1, "a clone keeps it running");
        drop(clone);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let after = fetches(&source);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(fetches(&source), after, "no fetch after the drop");
        assert_eq!(
            Arc::strong_count(&source),
            1,
            "the task let go of the verifier"
        );

        let source = new_source();
        let verifier = TokenVerifier::from_settings(&settings, source.clone());
        tokio::time::sleep(Duration::from_millis(150)).await;
        verifier.stop_refreshing();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let after = fetches(&source);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(fetches(&source), after, "no fetch after stop_refreshing");
    }
}
