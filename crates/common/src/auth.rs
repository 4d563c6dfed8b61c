//! Identity tokens: EdDSA (Ed25519) JWTs.
//!
//! Every service holds a [`TokenVerifier`] ([`verify`]) and checks tokens
//! itself through the [`AuthUser`] extractor, so a service reached directly
//! is as safe as one reached through the gateway. Only the users service
//! signs: [`TokenIssuer`] and the JWKS it publishes live in `issue`,
//! compiled with this crate's `issue` feature, so verifiers do not carry
//! key loading and signing.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use shop_api::UserId;

use crate::error::Problem;
use crate::wire;

#[cfg(feature = "issue")]
mod issue;
mod service;
mod verify;

#[cfg(feature = "issue")]
pub use issue::{
    IssuedToken, IssuerSettings, MAX_PUBLISHED_KEYS, TokenIssuer, generate_signing_key_pem,
};
pub use service::{ServiceGuard, refused as service_refused};
pub use verify::{
    DEFAULT_JWKS_REFRESH_MS, DEFAULT_KEY_GRACE_SECS, KeySource, TokenVerifier, VerifierSettings,
};

/// Seconds of clock skew tolerated between services when checking `exp`.
const LEEWAY_SECS: u64 = 5;

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
    /// The user id as the token carries it; [`Claims::user_id`] parses it.
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

impl Claims {
    /// The user the token was issued to: its subject, parsed.
    ///
    /// # Errors
    /// [`TokenError::Invalid`] when the subject is not a user id (a token
    /// that verified but was not issued for a user).
    pub fn user_id(&self) -> Result<UserId, TokenError> {
        self.sub
            .parse()
            .map_err(|_| TokenError::Invalid("the subject is not a user id".to_owned()))
    }
}

/// The authenticated caller of a request, from its `Authorization: Bearer`
/// token. Rejects with 401 problem+json when the token is missing, malformed,
/// expired, tampered with, signed with another algorithm or by an unknown key.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user id (the token's subject).
    pub user_id: UserId,
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
        let token = wire::bearer_token(&parts.headers)
            .ok_or_else(|| unauthorized("missing bearer token"))?;
        let verifier = TokenVerifier::from_ref(state);
        let claims = verifier.verify_fresh(token).await.map_err(|err| {
            tracing::debug!(error = %err, "rejected token");
            unauthorized("invalid or expired token")
        })?;
        let user_id = claims
            .user_id()
            .map_err(|_| unauthorized("invalid token subject"))?;
        Ok(Self {
            user_id,
            token: token.to_owned(),
        })
    }
}

/// 401 problem+json with a `WWW-Authenticate: Bearer` challenge.
pub fn unauthorized(detail: &str) -> Problem {
    Problem::with_detail(StatusCode::UNAUTHORIZED, detail)
        .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}
