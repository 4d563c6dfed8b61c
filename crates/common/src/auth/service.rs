//! The service credential of internal routes: [`ServiceGuard`] admits a
//! request that carries [`wire::SERVICE_TOKEN`] equal to the configured
//! `internal.service_token`, and answers anything else with a 401
//! problem. Internal routes (cart's order removals, catalog's stock
//! reservations, every payments route) sit behind it; the gateway strips
//! the header, so a client can never present it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::InternalSettings;
use crate::error::Problem;
use crate::wire;

/// Checks the service credential of internal routes.
#[derive(Clone)]
pub struct ServiceGuard {
    /// SHA-256 of the configured token: comparing digests keeps the
    /// comparison's timing from saying anything about the token.
    digest: Option<Arc<[u8; 32]>>,
}

impl std::fmt::Debug for ServiceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceGuard")
            .field("configured", &self.digest.is_some())
            .finish()
    }
}

impl ServiceGuard {
    /// A guard for `settings.service_token`. Without a token every internal
    /// call is refused, and `service` logs a warning saying so.
    pub fn new(settings: &InternalSettings, service: &str) -> Self {
        let digest = settings
            .service_token
            .as_ref()
            .map(|token| Arc::new(Sha256::digest(token.expose_secret().as_bytes()).into()));
        if digest.is_none() {
            tracing::warn!(
                service,
                "internal.service_token is not set: internal routes refuse every call"
            );
        }
        Self { digest }
    }

    /// Whether `headers` carry the configured credential.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let (Some(expected), Some(given)) =
            (self.digest.as_deref(), headers.get(wire::SERVICE_TOKEN))
        else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        &given == expected
    }

    /// `router` with every route behind the guard.
    pub fn protect<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        router.route_layer(middleware::from_fn_with_state(self.clone(), check))
    }
}

/// The 401 problem of a call without the right credential.
pub fn refused() -> Problem {
    Problem::with_detail(
        StatusCode::UNAUTHORIZED,
        "missing or wrong service credential",
    )
}

async fn check(State(guard): State<ServiceGuard>, request: Request, next: Next) -> Response {
    if guard.admits(request.headers()) {
        next.run(request).await
    } else {
        refused().into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn only_the_configured_token_is_admitted() {
        let settings = InternalSettings {
            service_token: Some(SecretString::from("s3cret")),
        };
        let guard = ServiceGuard::new(&settings, "test");
        let mut headers = HeaderMap::new();
        assert!(!guard.admits(&headers));
        headers.insert(wire::SERVICE_TOKEN, HeaderValue::from_static("wrong"));
        assert!(!guard.admits(&headers));
        headers.insert(wire::SERVICE_TOKEN, HeaderValue::from_static("s3cret"));
        assert!(guard.admits(&headers));
        let unset = ServiceGuard::new(&InternalSettings::default(), "test");
        assert!(!unset.admits(&headers));
    }
}
