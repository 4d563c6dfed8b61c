//! Metric names and the per-upstream handles. Handles are registered once
//! per upstream client so that recording on the request path allocates
//! nothing; the recorder itself is installed by `shop_common::metrics`.

use metrics::{Counter, Gauge, Histogram};

/// Calls made through an upstream client, by `upstream` and `outcome`
/// (`success`: a non-5xx response; `failure`: a 5xx response passed back;
/// `error`: no response, see [`crate::CallError`]).
pub const UPSTREAM_REQUESTS: &str = "upstream_requests_total";
/// Latency of calls through an upstream client in seconds, retries included, until response headers.
pub const UPSTREAM_REQUEST_DURATION: &str = "upstream_request_duration_seconds";
/// Retries sent, by `upstream`.
pub const UPSTREAM_RETRIES: &str = "upstream_retries_total";
/// Endpoints ejected by the outlier detector, by `upstream`.
pub const UPSTREAM_EJECTIONS: &str = "upstream_ejections_total";
/// Circuit breaker state by `upstream`: 0 closed, 1 open, 2 half-open.
pub const UPSTREAM_BREAKER_STATE: &str = "upstream_breaker_state";
/// Active health-check transitions, by `upstream` and `state` (`healthy`, `unhealthy`).
pub const UPSTREAM_HEALTH_TRANSITIONS: &str = "upstream_health_transitions_total";
/// Instances currently known, by `upstream`.
pub const UPSTREAM_INSTANCES: &str = "upstream_instances";

/// Pre-registered handles for one upstream.
pub(crate) struct UpstreamMetrics {
    pub(crate) success: Counter,
    pub(crate) failure: Counter,
    pub(crate) error: Counter,
    pub(crate) duration: Histogram,
    pub(crate) retries: Counter,
    pub(crate) ejections: Counter,
    pub(crate) breaker_state: Gauge,
    pub(crate) became_healthy: Counter,
    pub(crate) became_unhealthy: Counter,
    pub(crate) instances: Gauge,
}

impl UpstreamMetrics {
    pub(crate) fn new(upstream: &str) -> Self {
        // Make sure the process-wide recorder exists before handles are
        // taken; handles taken from no recorder would record nothing.
        shop_common::metrics::handle();
        let name = upstream.to_owned();
        let outcome = |outcome: &'static str| metrics::counter!(UPSTREAM_REQUESTS, "upstream" => name.clone(), "outcome" => outcome);
        let state = |state: &'static str| metrics::counter!(UPSTREAM_HEALTH_TRANSITIONS, "upstream" => name.clone(), "state" => state);
        Self {
            success: outcome("success"),
            failure: outcome("failure"),
            error: outcome("error"),
            duration: metrics::histogram!(UPSTREAM_REQUEST_DURATION, "upstream" => name.clone()),
            retries: metrics::counter!(UPSTREAM_RETRIES, "upstream" => name.clone()),
            ejections: metrics::counter!(UPSTREAM_EJECTIONS, "upstream" => name.clone()),
            breaker_state: metrics::gauge!(UPSTREAM_BREAKER_STATE, "upstream" => name.clone()),
            became_healthy: state("healthy"),
            became_unhealthy: state("unhealthy"),
            instances: metrics::gauge!(UPSTREAM_INSTANCES, "upstream" => name.clone()),
        }
    }
}
