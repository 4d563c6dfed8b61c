//! Issuing tokens (the users service alone): [`TokenIssuer`] signs with one
//! Ed25519 key and publishes its public keys as a JWKS document.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use shop_api::users::Jwks;
use uuid::Uuid;

use super::{Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenError, TokenVerifier};
use crate::config::ConfigError;

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
    /// key first, then the published ones. The wire type, so what users
    /// serves is what the OpenAPI document describes.
    pub fn jwks(&self) -> Jwks {
        let mut keys = Vec::with_capacity(1 + self.published.len());
        keys.push(self.jwk.clone());
        keys.extend(self.published.iter().cloned());
        Jwks { keys }
    }

    /// A verifier that trusts this issuer's keys: the signing key and the
    /// published ones, so that a replica verifies the tokens its peers sign
    /// in the middle of a rotation.
    pub fn verifier(&self) -> TokenVerifier {
        let verifier = TokenVerifier::new(&self.issuer, &self.audience);
        // Our own JWKS holds only valid Ed25519 keys.
        verifier.set_keys(&self.jwks().into());
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
    let pem = KeypairBytes {
        secret_key: rand::random(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .map_err(|err| TokenError::Key(err.to_string()))?;
    Ok(pem.as_str().to_owned())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An issuer with a key generated now; the verifier's tests use it too.
    pub(in crate::auth) fn issuer() -> TokenIssuer {
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

    #[test]
    fn configured_pem_keys_are_used_and_stable() {
        // A PKCS#8 v2 key (with the public key) must be accepted too.
        let pem = pem_of(7);
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

    /// The PKCS#8 v2 PEM (with the public key) of the key with this seed.
    fn pem_of(seed: u8) -> String {
        SigningKey::from_bytes(&[seed; 32])
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pem")
            .as_str()
            .to_owned()
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
}
