//! Identity tokens: EdDSA (Ed25519) JWTs.
//!
//! The users service holds a [`TokenIssuer`] and publishes its public keys as
//! a JWKS document; every service holds a [`TokenVerifier`] and checks tokens
//! itself through the [`AuthUser`] extractor, so a service reached directly is
//! as safe as one reached through the gateway.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use futures::future::BoxFuture;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

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
}

impl Default for IssuerSettings {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            token_ttl_secs: 900,
            signing_key_pem: None,
            signing_key_file: None,
        }
    }
}

/// What a verifying service expects in tokens; the keys themselves come from
/// the issuer's JWKS.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifierSettings {
    /// The expected `iss` claim.
    pub issuer: String,
    /// The expected `aud` claim.
    pub audience: String,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
        }
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

/// Signs access tokens with one Ed25519 key.
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    kid: String,
    jwk: Jwk,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Builds the issuer from settings: the PEM text, else the PEM file, else
    /// a key generated now (with a warning: tokens then stop verifying when
    /// the process restarts).
    ///
    /// # Errors
    /// [`TokenError::Key`] when the configured key cannot be read or parsed.
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
        Self::new(&key, settings)
    }

    fn new(key: &SigningKey, settings: &IssuerSettings) -> Result<Self, TokenError> {
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
        Ok(Self {
            key,
            kid,
            jwk,
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

    /// The public keys, as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    /// A verifier that trusts this issuer's key.
    pub fn verifier(&self) -> TokenVerifier {
        let verifier = TokenVerifier::new(&self.issuer, &self.audience);
        // Our own JWKS always holds one valid Ed25519 key.
        verifier.set_keys(&self.jwks());
        verifier
    }
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
/// be replaced while requests are being verified (JWKS refresh).
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    keys: RwLock<HashMap<String, DecodingKey>>,
    validation: Validation,
    source: Option<Arc<dyn KeySource>>,
    /// When keys were last fetched; held across a fetch so concurrent
    /// requests with an unknown `kid` cause one fetch, not one each.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Claims of tokens already verified, by SHA-256 of the token.
    verified: moka::sync::Cache<[u8; 32], Claims>,
}

/// Most verified tokens remembered. A token comes back on every request of
/// a session, and again at every service on its path; remembering it turns
/// an Ed25519 verification (~90 µs measured in docs/benchmarks.md) into a
/// hash lookup. Only tokens that verified are remembered, their expiry is
/// checked on every hit, and the memory emptied whenever the keys change;
/// at the bound, moka's admission and eviction policy (TinyLFU) decides
/// which are kept.
const VERIFIED_CAPACITY: u64 = 10_000;

/// Where a verifier fetches the current public keys: the users service's
/// JWKS, reached through discovery.
pub trait KeySource: Send + Sync + 'static {
    /// Fetches the key set.
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>>;
}

/// Shortest time between two key fetches: a flood of tokens with made-up
/// `kid`s must not become a flood of JWKS requests.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier with no keys yet, expecting `issuer` and `audience`.
    pub fn new(issuer: &str, audience: &str) -> Self {
        Self::build(issuer, audience, None)
    }

    /// A verifier that fetches its keys from `source`: on [`TokenVerifier::refresh`],
    /// and when a token names a `kid` it does not know (at most every 5 s).
    pub fn with_source(issuer: &str, audience: &str, source: Arc<dyn KeySource>) -> Self {
        Self::build(issuer, audience, Some(source))
    }

    fn build(issuer: &str, audience: &str, source: Option<Arc<dyn KeySource>>) -> Self {
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
                last_refresh: tokio::sync::Mutex::new(None),
                verified: moka::sync::Cache::new(VERIFIED_CAPACITY),
            }),
        }
    }

    /// Fetches the keys from the source now, unless that happened less than
    /// 5 s ago; returns how many keys are trusted afterwards.
    ///
    /// # Errors
    /// [`TokenError::Key`] when there is no source or the fetch fails (the
    /// keys held so far stay in use).
    pub async fn refresh(&self) -> Result<usize, TokenError> {
        let source = self
            .inner
            .source
            .as_ref()
            .ok_or_else(|| TokenError::Key("no key source".to_owned()))?;
        let mut last = self.inner.last_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL) {
            return Ok(self.key_count());
        }
        *last = Some(Instant::now());
        let jwks = source.fetch().await.map_err(TokenError::Key)?;
        Ok(self.set_keys(&jwks))
    }

    /// How many keys are trusted.
    pub fn key_count(&self) -> usize {
        match self.inner.keys.read() {
            Ok(guard) => guard.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
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
    /// `kid`; returns how many were accepted.
    pub fn set_keys(&self, jwks: &JwkSet) -> usize {
        let keys: HashMap<String, DecodingKey> = jwks
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, key))
            })
            .collect();
        let count = keys.len();
        match self.inner.keys.write() {
            Ok(mut guard) => *guard = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        // A token signed by a key that was just removed must stop verifying.
        self.inner.verified.invalidate_all();
        count
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
        let claims = self.verify_signature(token)?;
        self.remember(digest, &claims);
        Ok(claims)
    }

    /// The remembered claims of the token with this digest, while unexpired
    /// by the same rule (and leeway) as a full verification.
    fn remembered(&self, digest: &[u8; 32], now: u64) -> Option<Claims> {
        let claims = self.inner.verified.get(digest)?;
        (claims.exp.saturating_add(LEEWAY_SECS) >= now).then_some(claims)
    }

    fn remember(&self, digest: [u8; 32], claims: &Claims) {
        self.inner.verified.insert(digest, claims.clone());
    }

    fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
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
        let keys = match self.inner.keys.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let key = keys
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
        jsonwebtoken::decode::<Claims>(token, key, &self.inner.validation)
            .map(|data| data.claims)
            .map_err(|err| TokenError::Invalid(err.to_string()))
    }
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
        let verifier = TokenVerifier::with_source(DEFAULT_ISSUER, DEFAULT_AUDIENCE, source.clone());
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
}
