//! Prometheus metrics: one process-wide recorder (several services share it
//! in the all-in-one binary, told apart by the `service` label), the HTTP
//! request counter and latency histogram, the gRPC ones ([`grpc`]), the
//! service a metric is registered for ([`scope`]) and the gauges sampled
//! when `/metrics` is rendered ([`on_render`]).
//!
//! Names and units follow Prometheus' conventions: counters end in
//! `_total`, durations are histograms in seconds ending in `_seconds`
//! (all sharing [`LATENCY_BUCKETS`]), and a series a dashboard or an alert
//! reads is registered when its component starts, at zero, so that a check
//! on a fresh stack finds every name.

pub mod grpc;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use grpc::{GRPC_REQUEST_DURATION, GRPC_REQUESTS, GrpcMetricsLayer};

/// Requests served, by service, method, route and status.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Request latency in seconds, by service, method, route and status.
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";

/// The `service` label of a metric registered outside any [`scope`]
/// (a client or pool a test builds by hand).
pub const UNSCOPED_SERVICE: &str = "unknown";

/// Latency buckets in seconds of every `_seconds` histogram: fine at the
/// low end where a healthy service lives.
pub const LATENCY_BUCKETS: [f64; 14] = [
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

tokio::task_local! {
    /// The service whose components are being built (see [`scope`]).
    static SERVICE: &'static str;
}

/// Runs `future` (a service's assembly) as `service`: metrics registered
/// inside it without a service of their own (upstream clients, the
/// database pool) carry `service` as their `service` label, so that the
/// all-in-one process, and a dashboard over every process, tells
/// cart→catalog from gateway→catalog. Only the task running `future` is
/// in scope, not tasks it spawns: register handles before spawning.
pub async fn scope<F: Future>(service: &'static str, future: F) -> F::Output {
    SERVICE.scope(service, future).await
}

/// The service of the innermost [`scope`] around the caller, or
/// [`UNSCOPED_SERVICE`].
pub fn current_service() -> &'static str {
    SERVICE
        .try_with(|service| *service)
        .unwrap_or(UNSCOPED_SERVICE)
}

/// Functions run before every render: gauges that are cheaper to read at
/// scrape time than to keep current (a pool's connections in use).
static COLLECTORS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Runs `collect` before every render of `/metrics`, to set gauges from
/// their source. It must be quick and must not block: it runs on the
/// scrape's request. Register each function once.
pub fn on_render(collect: fn()) {
    COLLECTORS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(collect);
}

/// Renders every metric in the Prometheus text format, after running the
/// [`on_render`] collectors.
pub fn render() -> String {
    let handle = handle();
    let collectors = COLLECTORS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for collect in collectors {
        collect();
    }
    handle.render()
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
