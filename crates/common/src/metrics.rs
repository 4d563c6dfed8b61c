//! Prometheus metrics: one process-wide recorder (several services share it
//! in the all-in-one binary, told apart by the `service` label) and the
//! request counter and latency histogram.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests served, by service, method, route and status.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Request latency in seconds, by service, method, route and status.
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";

/// Latency buckets in seconds: fine at the low end where a healthy service lives.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus handle, installing the recorder on first use.
///
/// If another recorder was installed first (only possible if an embedding
/// program did so), metrics are rendered from a detached recorder and stay empty.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        let upkeep = handle.clone();
        // Histograms need periodic upkeep to drain their buffers.
        std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .ok();
        handle
    })
}

/// Renders every metric in the Prometheus text format.
pub fn render() -> String {
    handle().render()
}

/// Records one served request.
pub fn record_request(
    service: &'static str,
    method: &str,
    route: &str,
    status: u16,
    elapsed: Duration,
) {
    handle();
    let labels = [
        ("service", service.to_owned()),
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION, &labels).record(elapsed.as_secs_f64());
}
