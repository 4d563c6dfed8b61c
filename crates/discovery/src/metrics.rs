//! Metric names and the per-upstream handles. Handles are registered once
//! per upstream client so that recording on the request path allocates
//! nothing; the recorder itself is installed by `shop_common::metrics`.
//!
//! Every series carries `service`, the caller (the service whose assembly
//! built the client, see `shop_common::metrics::scope`), and `upstream`,
//! the service called: gateway→catalog and cart→catalog are two series,
//! also in the all-in-one process. All of them exist, at zero, from the
//! moment the client is built.

use metrics::{Counter, Gauge, Histogram};

/// Calls made through an upstream client, by `service`, `upstream` and `outcome`
/// (`success`: a non-5xx response; `failure`: a 5xx response passed back;
/// `error`: no response, see [`crate::CallError`]).
pub const UPSTREAM_REQUESTS: &str = "upstream_requests_total";
/// Latency of calls through an upstream client in seconds, retries
/// included, until response headers, by `service` and `upstream`.
pub const UPSTREAM_REQUEST_DURATION: &str = "upstream_request_duration_seconds";
/// Retries sent, by `service` and `upstream`.
pub const UPSTREAM_RETRIES: &str = "upstream_retries_total";
/// Endpoints ejected by the outlier detector, by `service` and `upstream`.
pub const UPSTREAM_EJECTIONS: &str = "upstream_ejections_total";
/// Circuit breaker state by `service` and `upstream`: 0 closed, 1 open, 2 half-open.
pub const UPSTREAM_BREAKER_STATE: &str = "upstream_breaker_state";
/// Active health-check transitions, by `service`, `upstream` and `state`
/// (`healthy`, `unhealthy`).
pub const UPSTREAM_HEALTH_TRANSITIONS: &str = "upstream_health_transitions_total";
/// Instances currently known, by `service` and `upstream`.
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
    /// The handles of calls to `upstream` by the service in scope
    /// (`shop_common::metrics::current_service`).
    pub(crate) fn new(upstream: &str) -> Self {
        // Make sure the process-wide recorder exists before handles are
        // taken; handles taken from no recorder would record nothing.
        shop_common::metrics::handle();
        let caller = shop_common::metrics::current_service();
        let name = upstream.to_owned();
        let labels = [("service", caller.to_owned()), ("upstream", name)];
        let with = |key: &'static str, value: &'static str| {
            let [service, upstream] = labels.clone();
            [service, upstream, (key, value.to_owned())]
        };
        Self {
            success: metrics::counter!(UPSTREAM_REQUESTS, &with("outcome", "success")),
            failure: metrics::counter!(UPSTREAM_REQUESTS, &with("outcome", "failure")),
            error: metrics::counter!(UPSTREAM_REQUESTS, &with("outcome", "error")),
            duration: metrics::histogram!(UPSTREAM_REQUEST_DURATION, &labels),
            retries: metrics::counter!(UPSTREAM_RETRIES, &labels),
            ejections: metrics::counter!(UPSTREAM_EJECTIONS, &labels),
            breaker_state: metrics::gauge!(UPSTREAM_BREAKER_STATE, &labels),
            became_healthy: metrics::counter!(
                UPSTREAM_HEALTH_TRANSITIONS,
                &with("state", "healthy")
            ),
            became_unhealthy: metrics::counter!(
                UPSTREAM_HEALTH_TRANSITIONS,
                &with("state", "unhealthy")
            ),
            instances: metrics::gauge!(UPSTREAM_INSTANCES, &labels),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_series_names_its_caller_and_upstream_from_the_start() {
        let metrics = shop_common::metrics::scope("metrics-caller", async {
            UpstreamMetrics::new("metrics-callee")
        })
        .await;
        metrics.success.increment(1);
        let text = shop_common::metrics::render();
        let labels = r#"service="metrics-caller",upstream="metrics-callee""#;
        for name in [
            UPSTREAM_REQUESTS,
            UPSTREAM_REQUEST_DURATION,
            UPSTREAM_RETRIES,
            UPSTREAM_EJECTIONS,
            UPSTREAM_BREAKER_STATE,
            UPSTREAM_HEALTH_TRANSITIONS,
            UPSTREAM_INSTANCES,
        ] {
            assert!(
                text.lines()
                    .any(|line| line.starts_with(name) && line.contains(labels)),
                "{name} with {labels}: {text}"
            );
        }
        let success = format!(r#"{UPSTREAM_REQUESTS}{{{labels},outcome="success"}} 1"#);
        assert!(
            text.lines().any(|line| line == success),
            "{success}: {text}"
        );

        let unscoped = UpstreamMetrics::new("metrics-callee-unscoped");
        unscoped.retries.increment(1);
        let unscoped = format!(
            r#"{UPSTREAM_RETRIES}{{service="{}",upstream="metrics-callee-unscoped"}} 1"#,
            shop_common::metrics::UNSCOPED_SERVICE
        );
        assert!(
            shop_common::metrics::render()
                .lines()
                .any(|line| line == unscoped),
            "{unscoped}"
        );
    }
}
