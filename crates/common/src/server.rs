//! Serving a service: its API listener and its admin listener, the layers
//! every router shares, the limits every listener enforces (header-read and
//! idle timeout, connection cap) and a graceful stop with a bounded drain.
//!
//! The API listener serves the service's routes with `/healthz` and
//! `/readyz` (probes, `--healthcheck` and the gateway's health checks ask
//! there); the admin listener serves `/metrics` beside the same probes, on
//! a port that deployments keep away from clients. Only the API address is
//! registered in discovery.
//!
//! A stop runs in this order, so that no caller meets a refused connection:
//! the stop signal; at once `/readyz` reports not ready and `on_stop`
//! deregisters the instance; the listener keeps accepting and serving for
//! the shutdown delay (callers drop the instance from their balancers
//! meanwhile; each response says `Connection: close`, so kept-alive
//! connections move elsewhere); then it stops accepting, in-flight requests
//! get the drain time, and idle keep-alive connections are closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::HeaderValue;
use axum::http::header::CONNECTION;
use axum::middleware;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::config::{AdminSettings, HttpSettings, ListenerLimits};
use crate::db::Db;
use crate::health::{self, Readiness};
use crate::{error, telemetry};

/// Connections an admin listener serves at once. Its clients are few (a
/// scraper keeps one keep-alive connection per target; a person or a second
/// scraper may add some); past it they wait in the kernel's backlog. Its
/// permits are its own, so a flood on the admin port cannot take the API's.
pub const ADMIN_MAX_CONNECTIONS: usize = 16;

/// The longest an admin listener drains. It stops only after the API
/// listener's drain (so metrics stay readable while requests finish), and a
/// scrape takes milliseconds: this bound keeps the stop from lasting two
/// API drains.
pub const ADMIN_DRAIN: Duration = Duration::from_secs(1);

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
    bind_addr(settings.addr()).await
}

/// Binds the admin listener of `settings`, or nothing when
/// `admin.enabled` is off.
///
/// # Errors
/// [`BindError`] when the address is taken or not ours.
pub async fn bind_admin(
    settings: &AdminSettings,
) -> Result<Option<(TcpListener, SocketAddr)>, BindError> {
    if !settings.enabled {
        return Ok(None);
    }
    bind_addr(settings.addr()).await.map(Some)
}

/// Binds `addr` (port 0 picks a free port) and returns the listener with the
/// address actually bound.
///
/// # Errors
/// [`BindError`] when the address is taken or not ours.
pub async fn bind_addr(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BindError> {
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
    /// The bound API listener.
    pub listener: TcpListener,
    /// The bound admin listener ([`bind_admin`]): `/metrics`, `/healthz`,
    /// `/readyz`. `None` when it is turned off.
    pub admin: Option<TcpListener>,
    /// The service's own routes; health routes and shared layers are added.
    pub router: Router,
    /// Readiness checks besides the database (the gateway's upstreams);
    /// [`Readiness::new`] for none.
    pub readiness: Readiness,
    /// The service's database, when it has one: a readiness check, closed
    /// after the drain.
    pub db: Option<Db>,
    /// The API listener's limits and the time in-flight requests get after
    /// the stop signal ([`HttpSettings::limits`]); the admin listener's
    /// follow from them ([`admin_limits`]).
    pub limits: ListenerLimits,
    /// Runs as soon as the stop signal comes, before the drain: deregistration,
    /// so callers stop picking this instance while it finishes its requests.
    pub on_stop: F,
}

/// The admin listener's limits, derived from the API listener's: the same
/// header-read and idle bound, at most [`ADMIN_MAX_CONNECTIONS`]
/// connections, no shutdown delay (it is told to stop once the API listener
/// has stopped, delay and drain included) and at most [`ADMIN_DRAIN`] of
/// drain.
pub fn admin_limits(api: ListenerLimits) -> ListenerLimits {
    ListenerLimits {
        // It is stopped after the API listener, delay and drain included.
        shutdown_delay: Duration::ZERO,
        drain: api.drain.min(ADMIN_DRAIN),
        header_read_timeout: api.header_read_timeout,
        max_connections: api.max_connections.clamp(1, ADMIN_MAX_CONNECTIONS),
    }
}

/// The admin listener's router: `/metrics` (the process-wide registry) and
/// the probes, with the shared layers.
pub fn admin_router(readiness: Readiness, service: &'static str) -> Router {
    with_common_layers(
        health::router(readiness).merge(health::metrics_router()),
        service,
    )
}

/// Serves `service` until `stop` is cancelled: the API listener with the
/// service's routes, `/healthz` and `/readyz` (its checks, the database, and
/// not ready once stopping); the admin listener with `/metrics` and the same
/// probes; both with the shared layers. On stop: runs `on_stop` at once,
/// serves on for `limits.shutdown_delay`, drains the API listener, then the
/// admin listener (so a scrape during the drain still answers), then closes
/// the database.
///
/// # Errors
/// An I/O error from a listener.
pub async fn run<F>(service: Service<F>, stop: CancellationToken) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let Service {
        name,
        listener,
        admin,
        router,
        readiness,
        db,
        limits,
        on_stop,
    } = service;
    let mut readiness = readiness.with_stop(stop.clone());
    if let Some(db) = &db {
        readiness = readiness.with_check(db.clone());
    }
    let api_router = with_common_layers(router.merge(health::router(readiness.clone())), name);
    if let Ok(addr) = listener.local_addr() {
        let admin_addr = admin.as_ref().and_then(|admin| admin.local_addr().ok());
        match admin_addr {
            Some(admin) => tracing::info!(service = name, %addr, %admin, "listening"),
            None => tracing::info!(service = name, %addr, "listening"),
        }
    }
    let stopping = stop.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        on_stop.await;
    });
    let admin_stop = CancellationToken::new();
    let api = async {
        let result = serve(listener, api_router, stop, limits).await;
        admin_stop.cancel();
        result
    };
    let admin = async {
        match admin {
            Some(admin) => {
                let router = admin_router(readiness, name);
                serve(admin, router, admin_stop.clone(), admin_limits(limits)).await
            }
            None => Ok(()),
        }
    };
    let (api_result, admin_result) = tokio::join!(api, admin);
    if let Some(db) = db {
        db.close().await;
    }
    tracing::info!(service = name, "stopped");
    api_result.and(admin_result)
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

/// Serves `router` on `listener` until `stop` is cancelled and
/// `limits.shutdown_delay` has passed since, then stops accepting and gives
/// in-flight requests up to `limits.drain` to finish; connections idle
/// between requests are closed at once. From the stop signal on, every
/// response carries `Connection: close`, so a client's kept-alive
/// connection is not reused for a request that could then meet the close.
///
/// HTTP/1.1 is served (every caller of these services speaks it; HTTP/2
/// without TLS would have to be told apart from HTTP/1 by its first bytes,
/// a wait no timeout of hyper's covers). Each connection takes one
/// of `limits.max_connections` permits before it is accepted, so past the cap
/// new clients wait in the kernel's backlog instead of exhausting file
/// descriptors. `limits.header_read_timeout` closes a connection whose
/// request headers do not arrive in time, and (HTTP/1 keep-alive) one that
/// stays idle that long between requests. Handlers see the peer address as
/// [`ConnectInfo<SocketAddr>`].
///
/// # Errors
/// None today: a failed accept is logged and the loop goes on (a reset
/// connection is skipped; anything else, such as running out of file
/// descriptors, waits 100 ms first). The `Result` keeps the shape callers
/// join with the other listeners' results.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    limits: ListenerLimits,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let stop_accepting = async {
        stop.cancelled().await;
        if !limits.shutdown_delay.is_zero() {
            tracing::info!(
                delay_ms = limits.shutdown_delay.as_millis(),
                "stopping: serving on while callers forget this instance"
            );
            tokio::time::sleep(limits.shutdown_delay).await;
        }
    };
    let mut stop_accepting = std::pin::pin!(stop_accepting);

    loop {
        let permit = tokio::select! {
            () = &mut stop_accepting => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // Never closed while we hold it.
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut stop_accepting => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    on_accept_error(&err).await;
                    continue;
                }
            },
        };
        // Replies go out as they are written: without TCP_NODELAY a reply
        // written in more than one piece waits for the peer's delayed ACK
        // (up to 40 ms on Linux) before its second piece.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        let stopping = stop.clone();
        let service = router
            .clone()
            .map_request(
                move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                },
            )
            .map_response(move |mut response: axum::response::Response| {
                if stopping.is_cancelled() {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                response
            });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    // Stop accepting at once: new clients are refused, not left waiting.
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {
            tracing::warn!(drain_secs = limits.drain.as_secs_f64(), "drain time over; dropping open connections");
        }
    }
    Ok(())
}

/// An accept error is about one connection (reset before it was taken) or
/// about the process (out of file descriptors): the first is skipped, the
/// second waits a moment so the loop does not spin while none is free.
async fn on_accept_error(err: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %err, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
