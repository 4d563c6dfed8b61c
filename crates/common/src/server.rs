//! Serving a router: the layers every service shares and a graceful stop with
//! a bounded drain.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::{error, telemetry};

/// Adds what every service router shares: problem+json 404/405 fallbacks, a
/// request id (taken from `x-request-id` or generated, echoed in the
/// response), and one log line plus metrics per request labelled `service`.
///
/// Layer order matters: the request id is set outermost so the log line and
/// the handler both see it; the observer runs after routing so it can label
/// by the matched route rather than the raw path.
pub fn with_common_layers(router: Router, service: &'static str) -> Router {
    router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn_with_state(service, telemetry::observe))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Serves `router` on `listener` until `stop` is cancelled, then stops
/// accepting and gives in-flight requests up to `drain` to finish.
///
/// # Errors
/// An I/O error from the listener.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.clone().cancelled_owned());
    let drain_deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        result = server => result,
        () = drain_deadline => {
            tracing::warn!(drain_secs = drain.as_secs_f64(), "drain time over; dropping open connections");
            Ok(())
        }
    }
}
