//! CORS from config: the listed origins (or any, without credentials),
//! the API's methods and request headers; preflights are answered here
//! and never reach a service. Off when no origin is configured.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsSettings;

/// Request headers a browser may send.
const ALLOWED_HEADERS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("x-request-id"),
];

/// Response headers a browser script may read.
const EXPOSED_HEADERS: [HeaderName; 3] = [
    header::LOCATION,
    header::RETRY_AFTER,
    HeaderName::from_static("x-request-id"),
];

/// The CORS layer of `settings`, or `None` when CORS is off. Settings are
/// validated at start-up (no `*` with credentials, well-formed origins).
pub fn layer(settings: &CorsSettings) -> Option<CorsLayer> {
    if !settings.enabled() {
        return None;
    }
    let origins = if settings.any_origin() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            settings
                .allowed_origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers(ALLOWED_HEADERS)
            .expose_headers(EXPOSED_HEADERS)
            .allow_credentials(settings.allow_credentials)
            .max_age(Duration::from_secs(settings.max_age_secs)),
    )
}
