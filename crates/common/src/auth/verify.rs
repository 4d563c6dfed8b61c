//! Verifying tokens: [`TokenVerifier`] and the [`KeySource`] it keeps the
//! issuer's public keys from, with the [`VerifierSettings`] of a verifying
//! service.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, LEEWAY_SECS, TokenError};
use crate::config::ConfigError;

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
    /// Cancels `stop` when the last clone is gone: the refresh task ends
    /// now rather than at its next tick.
    _stop_on_drop: DropGuard,
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
        let stop = CancellationToken::new();
        Self {
            inner: Arc::new(VerifierInner {
                keys: RwLock::new(HashMap::new()),
                validation,
                source,
                grace,
                last_refresh: tokio::sync::Mutex::new(None),
                verified: moka::sync::Cache::new(VERIFIED_CAPACITY),
                generations: AtomicU64::new(0),
                _stop_on_drop: stop.clone().drop_guard(),
                stop,
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

#[cfg(test)]
#[cfg(feature = "issue")]
mod tests {
    use std::path::PathBuf;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::auth::issue::tests::issuer;
    use crate::auth::{IssuerSettings, MAX_PUBLISHED_KEYS, TokenIssuer};

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
        other.set_keys(&issuer.jwks().into());
        assert!(other.verify(&token.token).is_err());
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
            jwks: issuer.jwks().into(),
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

        let stranger = TokenIssuer::from_settings(&IssuerSettings::default()).expect("key");
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
            &TokenIssuer::from_settings(&IssuerSettings::default())
                .expect("key")
                .jwks()
                .into(),
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

    /// Two issuers, a [`merging`] verifier with `grace` that trusts
    /// neither yet, and the time the key-merge test starts at.
    fn two_keys(grace: Duration) -> (TokenIssuer, TokenIssuer, TokenVerifier, Instant) {
        (issuer(), issuer(), merging(grace), Instant::now())
    }

    fn set(issuers: &[&TokenIssuer]) -> JwkSet {
        JwkSet {
            keys: issuers
                .iter()
                .flat_map(|issuer| issuer.jwks().keys)
                .collect(),
        }
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
        let (a, b, verifier, t0) = two_keys(GRACE);
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
        let (a, b, verifier, t0) = two_keys(GRACE);
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
        let (a, b, verifier, t0) = two_keys(Duration::ZERO);
        verifier.merge_keys_at(&set(&[&a, &b]), t0);
        assert_eq!(
            verifier.merge_keys_at(&set(&[&b]), t0 + Duration::from_millis(1)),
            1
        );
        assert_eq!(verifier.kids(), vec![b.kid().to_owned()]);
    }

    #[test]
    fn a_dropped_key_forgets_only_its_own_remembered_tokens() {
        let (a, b, verifier, t0) = two_keys(GRACE);
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
        let (a, b, verifier, t0) = two_keys(GRACE);
        verifier.merge_keys_at(&set(&[&a]), t0);
        let token_a = a.issue("u").expect("signed").token;
        assert!(verifier.verify(&token_a).is_ok());
        let mut impostor: JwkSet = b.jwks().into();
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
        let mut jwks: JwkSet = a.jwks().into();
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
        verifier.merge_keys(&a.jwks().into());
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
                jwks: a.jwks().into(),
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
