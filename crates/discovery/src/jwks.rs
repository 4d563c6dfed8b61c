//! The token keys of the users service, fetched through discovery: a
//! [`KeySource`] for [`shop_common::auth::TokenVerifier::from_settings`].
//!
//! Each fetch reaches one users instance, picked by the upstream's policy;
//! instances in the middle of a key rotation may publish different sets,
//! which is why the verifier merges what it fetches rather than replacing
//! its keys (see `TokenVerifier`).

use futures::future::BoxFuture;
use http::{Request, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use shop_common::auth::KeySource;

use crate::{RequestBody, UpstreamClient};

/// Where the users service publishes its keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Largest JWKS document read.
const MAX_JWKS: usize = 64 * 1024;

/// Fetches `GET /.well-known/jwks.json` from an upstream (the users service).
#[derive(Debug, Clone)]
pub struct JwksSource {
    users: UpstreamClient,
}

impl JwksSource {
    /// A key source reading from `users`.
    pub fn new(users: UpstreamClient) -> Self {
        Self { users }
    }

    async fn fetch_jwks(&self) -> Result<JwkSet, String> {
        let request = Request::get(JWKS_PATH)
            .body(RequestBody::empty())
            .map_err(|err| err.to_string())?;
        let response = self
            .users
            .send(request)
            .await
            .map_err(|err| err.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!("{JWKS_PATH} answered {}", response.status()));
        }
        let body = response
            .into_body()
            .bytes(MAX_JWKS)
            .await
            .map_err(|err| format!("reading {JWKS_PATH}: {err}"))?;
        serde_json::from_slice(&body)
            .map_err(|err| format!("{JWKS_PATH} is not a JWKS document: {err}"))
    }
}

impl KeySource for JwksSource {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>> {
        Box::pin(self.fetch_jwks())
    }
}
