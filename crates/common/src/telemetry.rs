//! Logging: the process-wide tracing subscriber and the one line logged per
//! request (method, route, status, latency, request id).

use std::io::IsTerminal;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::metrics;

/// The filter used when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn,h2=warn,tower=warn";

/// Installs the global subscriber: `RUST_LOG`-style filtering, JSON lines when
/// `SHOP_LOG_FORMAT=json`, otherwise a human format (coloured on a terminal).
///
/// Calling it again (as tests and the all-in-one binary may) is harmless.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json =
        std::env::var("SHOP_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    // An error only means a subscriber is already installed.
    drop(result);
}

/// Routes polled by probes and scrapers: logged at debug so they do not drown
/// the request log.
fn is_probe(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz" | "/metrics")
}

/// Middleware: runs the request inside a span carrying the request id and
/// route, then logs one line and records the request metrics.
pub async fn observe(
    State(service): State<&'static str>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // Clones share their text: nothing is copied on the request path.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let request_id = request.headers().get("x-request-id").cloned();
    let request_id = request_id
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!("request", service, %method, route, request_id);
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if is_probe(route) {
            tracing::debug!(status, latency_ms, "request");
        } else if status >= 500 {
            tracing::warn!(status, latency_ms, "request");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
    });
    metrics::record_request(service, &method, route, status, elapsed);
    response
}
