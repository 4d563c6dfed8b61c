//! Health and metrics endpoints: `GET /healthz` (the process is alive),
//! `GET /readyz` (every registered readiness check passes, and the service is
//! not shutting down) — served on the API port, where probes and the
//! gateway's health checks ask — and `GET /metrics` (Prometheus text), served
//! only on the admin listener ([`crate::server`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// How long one readiness check may take before it counts as failed; a probe
/// must answer even when a dependency hangs.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Something a service needs in order to serve traffic, such as its database.
pub trait ReadinessCheck: Send + Sync + 'static {
    /// A short name for the readiness body (`database`, `catalog`, …).
    fn name(&self) -> &str;
    /// `Ok` when the dependency answers; `Err` with a short reason otherwise.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// The readiness checks of one service, plus the stop token: a service that
/// is draining reports not ready so balancers stop sending it traffic.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    stops: Vec<CancellationToken>,
}

/// The `/readyz` body.
#[derive(Debug, Serialize)]
pub struct ReadinessReport {
    /// `ready` or `not ready`.
    pub status: &'static str,
    /// Each check by name: `ok` or the reason it failed.
    pub checks: BTreeMap<String, String>,
}

impl Readiness {
    /// No checks yet; reports ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check.
    #[must_use]
    pub fn with_check(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Reports not ready once `stop` (or any other token given here) is
    /// cancelled.
    #[must_use]
    pub fn with_stop(mut self, stop: CancellationToken) -> Self {
        self.stops.push(stop);
        self
    }

    /// Runs every check concurrently, each bounded by a timeout.
    pub async fn report(&self) -> ReadinessReport {
        let results = futures::future::join_all(self.checks.iter().map(|check| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                Ok(Ok(())) => "ok".to_owned(),
                Ok(Err(reason)) => reason,
                Err(_) => format!("timed out after {} s", CHECK_TIMEOUT.as_secs()),
            };
            (check.name().to_owned(), outcome)
        }))
        .await;
        let mut checks: BTreeMap<String, String> = results.into_iter().collect();
        if self.stops.iter().any(CancellationToken::is_cancelled) {
            checks.insert("shutdown".to_owned(), "shutting down".to_owned());
        }
        let ready = checks.values().all(|outcome| outcome == "ok");
        ReadinessReport {
            status: if ready { "ready" } else { "not ready" },
            checks,
        }
    }
}

/// The `/healthz` and `/readyz` routes.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

/// The `/metrics` route: the process-wide registry in the Prometheus text
/// format. For admin listeners only; an API port must not serve it.
pub fn metrics_router() -> Router {
    Router::new().route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "alive" }))
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let report = readiness.report().await;
    let status = if report.status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}
