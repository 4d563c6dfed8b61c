//! Prometheus metrics: one process-wide recorder (several services share it
//! in the all-in-one binary, told apart by the `service` label) and the
//! request counter and latency histogram.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
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

/// Most (service, route, method, status) combinations whose handles are
/// kept; beyond it (only reachable with made-up methods) requests are still
/// recorded, through the registry's slower lookup.
const MAX_CACHED_SERIES: usize = 1024;

/// The handles of one request series.
#[derive(Clone)]
struct RequestSeries {
    method: http::Method,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// Handles by service and route, then a short list per (method, status):
/// looking one up borrows the route, so recording a request allocates
/// nothing once its series exists.
#[derive(Default)]
struct SeriesCache {
    by_route: HashMap<&'static str, HashMap<String, Vec<RequestSeries>>>,
    len: usize,
}

static SERIES: OnceLock<RwLock<SeriesCache>> = OnceLock::new();

/// Records one served request.
pub fn record_request(
    service: &'static str,
    method: &http::Method,
    route: &str,
    status: u16,
    elapsed: Duration,
) {
    let series = request_series(service, method, route, status);
    series.requests.increment(1);
    series.duration.record(elapsed.as_secs_f64());
}

/// The handles of a series: from the cache, or registered (and cached).
fn request_series(
    service: &'static str,
    method: &http::Method,
    route: &str,
    status: u16,
) -> RequestSeries {
    let cache = SERIES.get_or_init(Default::default);
    let find = |cache: &SeriesCache| {
        cache
            .by_route
            .get(service)
            .and_then(|routes| routes.get(route))
            .and_then(|list| {
                list.iter()
                    .find(|series| series.status == status && series.method == method)
                    .cloned()
            })
    };
    if let Some(found) = cache.read().ok().as_deref().and_then(find) {
        return found;
    }
    handle();
    let labels = [
        ("service", service.to_owned()),
        ("method", method.as_str().to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    let series = RequestSeries {
        method: method.clone(),
        status,
        requests: metrics::counter!(HTTP_REQUESTS, &labels),
        duration: metrics::histogram!(HTTP_REQUEST_DURATION, &labels),
    };
    if let Ok(mut cache) = cache.write()
        && cache.len < MAX_CACHED_SERIES
        && find(&cache).is_none()
    {
        cache.len += 1;
        cache
            .by_route
            .entry(service)
            .or_default()
            .entry(route.to_owned())
            .or_default()
            .push(series.clone());
    }
    series
}
