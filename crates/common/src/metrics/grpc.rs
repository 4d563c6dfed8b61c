//! gRPC RED metrics: a tower layer for a tonic server that counts every
//! call and times it, by service, method and status code.
//!
//! A call ends when its response body ends: at the trailers that carry
//! `grpc-status` (or at once, for a trailers-only answer, whose status is
//! in the headers). A response body dropped before its end (the client
//! went away, the server stopped) counts as `CANCELLED`. Streaming calls
//! are timed the same way, so a long-lived stream (`grpc.health.v1`'s
//! `Watch`) shows its whole life; read latency per method.
//!
//! The `method` label is the call's path (`/package.Service/Method`) when
//! it is one of the server's known methods, else [`OTHER_METHOD`], so a
//! client inventing paths cannot grow the registry. Every known method's
//! `OK` series is registered when the layer is built; the other codes on
//! first use (at most 17 per method).

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use hyper::body::{Body, Frame, SizeHint};
use metrics::{Counter, Histogram};

/// Calls served, by `service`, `method` and `code`.
pub const GRPC_REQUESTS: &str = "grpc_requests_total";
/// Call duration in seconds until the status was sent, by `service`,
/// `method` and `code`.
pub const GRPC_REQUEST_DURATION: &str = "grpc_request_duration_seconds";
/// The `method` label of a call to a path the server does not list.
pub const OTHER_METHOD: &str = "other";

/// gRPC status codes by number: the `code` label's values.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];
const OK: usize = 0;
const CANCELLED: usize = 1;
const UNKNOWN: usize = 2;

/// The code a `grpc-status` value stands for; a value that is no code is
/// `UNKNOWN`, as the gRPC spec says a client must read it.
fn code_of(headers: &HeaderMap) -> Option<usize> {
    let value = headers.get("grpc-status")?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|text| text.parse::<usize>().ok())
            .filter(|code| *code < CODES.len())
            .unwrap_or(UNKNOWN),
    )
}

/// The handles of one method: one pair per code, registered on first use.
struct MethodSeries {
    service: &'static str,
    method: &'static str,
    by_code: [OnceLock<(Counter, Histogram)>; CODES.len()],
}

impl MethodSeries {
    fn new(service: &'static str, method: &'static str) -> Self {
        let series = Self {
            service,
            method,
            by_code: Default::default(),
        };
        series.handles(OK);
        series
    }

    fn handles(&self, code: usize) -> &(Counter, Histogram) {
        self.by_code[code].get_or_init(|| {
            let labels = [
                ("service", self.service),
                ("method", self.method),
                ("code", CODES[code]),
            ];
            (
                metrics::counter!(GRPC_REQUESTS, &labels),
                metrics::histogram!(GRPC_REQUEST_DURATION, &labels),
            )
        })
    }

    fn record(&self, code: usize, started: Instant) {
        let (requests, duration) = self.handles(code);
        requests.increment(1);
        duration.record(started.elapsed().as_secs_f64());
    }
}

struct Table {
    methods: Vec<(&'static str, MethodSeries)>,
    other: MethodSeries,
}

impl Table {
    fn index_of(&self, path: &str) -> Option<usize> {
        self.methods.iter().position(|(known, _)| *known == path)
    }

    fn series(&self, method: Option<usize>) -> &MethodSeries {
        method
            .and_then(|index| self.methods.get(index))
            .map_or(&self.other, |(_, series)| series)
    }
}

/// The layer: wrap a tonic server's routes with it
/// (`Server::builder().layer(...)`). Cheap to clone.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    table: Arc<Table>,
}

impl std::fmt::Debug for GrpcMetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcMetricsLayer")
            .field("service", &self.table.other.service)
            .field("methods", &self.table.methods.len())
            .finish()
    }
}

impl GrpcMetricsLayer {
    /// Metrics of `service`'s calls to `methods` (paths,
    /// `/package.Service/Method`); calls to any other path count under
    /// [`OTHER_METHOD`]. Registers every method's `OK` series at zero.
    pub fn new(service: &'static str, methods: &[&'static str]) -> Self {
        super::handle();
        let methods = methods
            .iter()
            .map(|&method| (method, MethodSeries::new(service, method)))
            .collect();
        Self {
            table: Arc::new(Table {
                methods,
                other: MethodSeries::new(service, OTHER_METHOD),
            }),
        }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics {
            inner,
            table: Arc::clone(&self.table),
        }
    }
}

/// The service [`GrpcMetricsLayer`] makes.
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    table: Arc<Table>,
}

impl<S> std::fmt::Debug for GrpcMetrics<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcMetrics").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for GrpcMetrics<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    // Boxed: the inner future need not be `Unpin`, and this crate pins
    // nothing by hand. tonic boxes each call's future and body anyway.
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let call = Call {
            method: self.table.index_of(request.uri().path()),
            table: Arc::clone(&self.table),
            started: Instant::now(),
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            match response.await {
                Ok(response) => Ok(call.watch(response)),
                Err(err) => {
                    // No response at all (tonic's own routes never do this).
                    call.finish(UNKNOWN);
                    Err(err)
                }
            }
        })
    }
}

/// One call being timed.
struct Call {
    table: Arc<Table>,
    /// Index into the table's methods; `None` for [`OTHER_METHOD`].
    method: Option<usize>,
    started: Instant,
}

impl Call {
    fn finish(&self, code: usize) {
        self.table.series(self.method).record(code, self.started);
    }

    /// Records the call now when the headers carry its status
    /// (trailers-only), otherwise when the body ends.
    fn watch<B>(self, response: Response<B>) -> Response<MeteredBody<B>> {
        let pending = match code_of(response.headers()) {
            Some(code) => {
                self.finish(code);
                None
            }
            None => Some(self),
        };
        response.map(|inner| MeteredBody { inner, pending })
    }
}

/// A response body that records its call when it ends (see the module
/// documentation).
pub struct MeteredBody<B> {
    inner: B,
    pending: Option<Call>,
}

impl<B> std::fmt::Debug for MeteredBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredBody")
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> MeteredBody<B> {
    fn finish(&mut self, code: usize) {
        if let Some(call) = self.pending.take() {
            call.finish(code);
        }
    }
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    self.finish(code_of(trailers).unwrap_or(UNKNOWN));
                }
            }
            // The stream broke: no status reached the client.
            Poll::Ready(Some(Err(_))) => self.finish(UNKNOWN),
            // Ended without trailers: no status was sent.
            Poll::Ready(None) => self.finish(UNKNOWN),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        self.finish(CANCELLED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "grpc-status",
            http::HeaderValue::from_str(status).expect("header value"),
        );
        headers
    }

    #[test]
    fn status_values_map_to_their_names_and_nonsense_to_unknown() {
        assert_eq!(code_of(&HeaderMap::new()), None);
        assert_eq!(code_of(&headers("0")).map(|code| CODES[code]), Some("OK"));
        assert_eq!(
            code_of(&headers("16")).map(|code| CODES[code]),
            Some("UNAUTHENTICATED")
        );
        assert_eq!(code_of(&headers("17")), Some(UNKNOWN));
        assert_eq!(code_of(&headers("x")), Some(UNKNOWN));
    }

    #[test]
    fn unknown_paths_share_one_series() {
        let layer = GrpcMetricsLayer::new("test-grpc", &["/a.B/C"]);
        assert_eq!(layer.table.index_of("/a.B/C"), Some(0));
        assert_eq!(layer.table.index_of("/a.B/D"), None);
        assert_eq!(layer.table.series(None).method, OTHER_METHOD);
    }
}
