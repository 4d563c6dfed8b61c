//! Serving a router: the layers every service shares and a graceful stop with
//! a bounded drain.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::config::HttpSettings;
use crate::db::Db;
use crate::health::{self, Readiness};
use crate::{error, telemetry};

/// The listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Binds the listener of `settings` (port 0 picks a free port) and returns
/// it with the address actually bound.
///
/// # Errors
/// [`BindError`] when the address is taken or not ours.
pub async fn bind(settings: &HttpSettings) -> Result<(TcpListener, SocketAddr), BindError> {
    let addr = settings.addr();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BindError { addr, source })?;
    Ok((listener, bound))
}

/// Everything [`run`] needs to serve one HTTP service.
pub struct Service<F> {
    /// The service name in logs and metrics.
    pub name: &'static str,
    /// The bound listener.
    pub listener: TcpListener,
    /// The service's own routes; health routes and shared layers are added.
    pub router: Router,
    /// The service's database: a readiness check, closed after the drain.
    pub db: Db,
    /// Time in-flight requests get after the stop signal.
    pub drain: Duration,
    /// Runs as soon as the stop signal comes, before the drain: deregistration,
    /// so callers stop picking this instance while it finishes its requests.
    pub on_stop: F,
}

/// Serves `service` until `stop` is cancelled: adds `/healthz`, `/readyz`
/// (database, and not ready once stopping) and `/metrics` and the shared
/// layers; on stop runs `on_stop`, drains, then closes the database.
///
/// # Errors
/// An I/O error from the listener.
pub async fn run<F>(service: Service<F>, stop: CancellationToken) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let Service {
        name,
        listener,
        router,
        db,
        drain,
        on_stop,
    } = service;
    let readiness = Readiness::new()
        .with_check(db.clone())
        .with_stop(stop.clone());
    let router = with_common_layers(router.merge(health::router(readiness)), name);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(service = name, %addr, "listening");
    }
    let stopping = stop.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        on_stop.await;
    });
    let result = serve(listener, router, stop, drain).await;
    db.close().await;
    tracing::info!(service = name, "stopped");
    result
}

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
        // One stack, applied once: each `Router::layer` call boxes every
        // route again, and boxed routes are cloned per request.
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(middleware::from_fn_with_state(service, telemetry::observe)),
        )
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
