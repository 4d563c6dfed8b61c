//! Traces across services: W3C trace context in and out, the spans every
//! service shares (a server span per inbound request or gRPC call, a
//! `db.transaction` span per store transaction), and a trace context kept
//! in a database row so work done later (the outbox relay, the saga's
//! recovery) continues the trace of the request that caused it.
//!
//! Spans are `tracing` spans; the OpenTelemetry layer that
//! [`crate::telemetry::init`] installs gives them trace and span ids
//! whether or not spans are exported, so logs and propagated headers carry
//! them either way (with export off, only the spans that start a service's
//! part get ids of their own; the spans below them share theirs). Which
//! spans are sent anywhere is the exporter's business
//! ([`crate::telemetry::start_export`]).
//!
//! A span that starts a service's part of a trace — a server span, or the
//! root of a worker's unit of work — names its service in a `service`
//! field and marks the context it starts from with [`ServiceName`]; every
//! span below it gets the same `service` attribute when exported, so one
//! trace still tells apart services that share a process (the all-in-one
//! `shop`).

use std::future::Future;
use std::task::{Context as TaskContext, Poll};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing::instrument::Instrumented;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::db::Backend;

/// The W3C trace context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The W3C vendor trace state header.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The attribute naming the service a span belongs to.
pub const SERVICE_ATTRIBUTE: &str = "service";

/// The service a part of a trace belongs to, carried in the OpenTelemetry
/// context from the span that starts that part down to every span below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceName(pub &'static str);

impl ServiceName {
    /// The `service` attribute of a span starting from `parent`: set when
    /// `parent` is a span of this process, which carries its service; a
    /// span starting a part of the trace (its parent remote, or none) names
    /// its service in a field of its own.
    pub fn attribute_below(parent: &Context) -> Option<KeyValue> {
        let span = parent.span();
        let local = span.span_context().is_valid() && !span.span_context().is_remote();
        local
            .then(|| parent.get::<Self>())
            .flatten()
            .map(|Self(name)| KeyValue::new(SERVICE_ATTRIBUTE, *name))
    }
}

/// The trace context `headers` carry (`traceparent`, `tracestate`); an
/// empty context when they carry none or a malformed one.
pub fn extract(headers: &HeaderMap) -> Context {
    if !headers.contains_key(TRACEPARENT) {
        return Context::new();
    }
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// The context of a stored `traceparent` (see [`current_traceparent`]);
/// empty when it is malformed.
pub fn from_traceparent(traceparent: &str) -> Context {
    TraceContextPropagator::new().extract(&OneHeader(traceparent))
}

/// Sets `traceparent` (and `tracestate`, or removes a stale one) in
/// `headers` to the context of `span`, so the callee's spans become its
/// children; when `span` is not traced (with export off only the spans
/// starting a service's part are), to the current context, the one of the
/// span `span` is part of. Leaves `headers` alone when neither has a trace
/// context (no OpenTelemetry layer is installed, or no span is traced).
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    let mut cx = span.context();
    if !cx.span().span_context().is_valid() {
        cx = Context::current();
    }
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }
}

/// The `traceparent` of the current span, to store with work that is
/// finished later; `None` outside a traced span.
pub fn current_traceparent() -> Option<String> {
    Context::map_current(|cx| {
        let span = cx.span();
        let context = span.span_context();
        context.is_valid().then(|| traceparent_of(context))
    })
}

/// The `traceparent` header value of `context`.
pub fn traceparent_of(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// Makes `span` (not entered yet) start `service`'s part of the trace whose
/// context is `parent`: its child when `parent` holds a span, a new trace's
/// root otherwise. Spans below it carry `service` ([`ServiceName`]).
pub fn start_from(span: &Span, service: &'static str, parent: Context) {
    let parent = if crate::telemetry::exporting() {
        parent.with_value(ServiceName(service))
    } else if parent.span().span_context().is_valid() {
        parent
    } else {
        // Nothing to pass on: the span is a root as it is.
        return;
    };
    // Fails only when no OpenTelemetry layer is installed or the span is
    // disabled: then there is no trace to join.
    drop(span.set_parent(parent));
}

/// The `db.system` of a database (`sqlite`, `postgresql`).
pub fn db_system(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    }
}

/// The span of one store operation that runs a database transaction:
/// `db.transaction`, with `db.system` and `db.operation`.
pub fn db_span(backend: Backend, operation: &'static str) -> Span {
    tracing::info_span!(
        "db.transaction",
        otel.kind = "client",
        db.system = db_system(backend),
        db.operation = operation,
    )
}

/// The server span of each gRPC call (`grpc request`, with `rpc.service`
/// and `rpc.method`), started from the caller's `traceparent`, around
/// every service of a tonic server.
#[derive(Debug, Clone, Copy)]
pub struct GrpcServerLayer {
    service: &'static str,
}

impl GrpcServerLayer {
    /// The layer of the service named `service`.
    pub fn new(service: &'static str) -> Self {
        Self { service }
    }
}

impl<S> tower::Layer<S> for GrpcServerLayer {
    type Service = GrpcServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServer {
            inner,
            service: self.service,
        }
    }
}

/// The service of [`GrpcServerLayer`].
#[derive(Debug, Clone)]
pub struct GrpcServer<S> {
    inner: S,
    service: &'static str,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcServer<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        // `/package.Service/Method`
        let (rpc_service, rpc_method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path, ""));
        let span = tracing::info_span!(
            "grpc request",
            service = self.service,
            otel.kind = "server",
            otel.name = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = rpc_service,
            rpc.method = rpc_method,
        );
        if crate::telemetry::exporting() {
            span.record("otel.name", path.trim_start_matches('/'));
        }
        start_from(&span, self.service, extract(request.headers()));
        let future = span.in_scope(|| self.inner.call(request));
        tracing::Instrument::instrument(future, span)
    }
}

/// A future run in a span that starts `service`'s part of the trace stored
/// as `traceparent` (a worker resuming work a request began): see
/// [`start_from`].
pub fn continued<F: Future>(
    future: F,
    span: Span,
    service: &'static str,
    traceparent: Option<&str>,
) -> Instrumented<F> {
    let parent = traceparent.map_or_else(Context::new, from_traceparent);
    start_from(&span, service, parent);
    tracing::Instrument::instrument(future, span)
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// A stored `traceparent` as the one header an extractor reads.
struct OneHeader<'a>(&'a str);

impl Extractor for OneHeader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
            return;
        };
        match HeaderValue::try_from(value) {
            // An empty trace state must not leave the caller's behind.
            Ok(value) if !value.is_empty() => {
                self.0.insert(name, value);
            }
            _ => {
                self.0.remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_round_trips_through_headers_and_storage() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        let cx = extract(&headers);
        let span = cx.span();
        let context = span.span_context();
        assert!(context.is_valid() && context.is_remote());
        assert_eq!(
            context.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex")
        );
        assert_eq!(traceparent_of(context), VALID);
        let stored = from_traceparent(VALID);
        assert_eq!(stored.span().span_context().span_id(), context.span_id());
    }

    #[test]
    fn malformed_or_missing_context_is_empty() {
        let mut headers = HeaderMap::new();
        assert!(!extract(&headers).span().span_context().is_valid());
        headers.insert(TRACEPARENT, HeaderValue::from_static("garbage"));
        assert!(!extract(&headers).span().span_context().is_valid());
        assert!(
            !from_traceparent("00-0-0-01")
                .span()
                .span_context()
                .is_valid()
        );
    }

    #[test]
    fn the_service_attribute_is_set_below_a_local_span_only() {
        let ids = |remote| {
            SpanContext::new(
                TraceId::from(7_u128),
                SpanId::from(9_u64),
                TraceFlags::SAMPLED,
                remote,
                TraceState::default(),
            )
        };
        // A server span's parent: the caller's, extracted from headers.
        let remote = Context::new()
            .with_remote_span_context(ids(true))
            .with_value(ServiceName("cart"));
        assert_eq!(ServiceName::attribute_below(&remote), None);
        let local = ids(false);
        let cx = Context::new()
            .with_span(NonRecording(local))
            .with_value(ServiceName("cart"));
        assert_eq!(
            ServiceName::attribute_below(&cx),
            Some(KeyValue::new(SERVICE_ATTRIBUTE, "cart"))
        );
        assert_eq!(ServiceName::attribute_below(&Context::new()), None);
    }

    /// A local span that records nothing, for contexts in tests.
    #[derive(Debug)]
    struct NonRecording(SpanContext);

    impl opentelemetry::trace::Span for NonRecording {
        fn add_event_with_timestamp<T>(
            &mut self,
            _name: T,
            _timestamp: std::time::SystemTime,
            _attributes: Vec<KeyValue>,
        ) where
            T: Into<std::borrow::Cow<'static, str>>,
        {
        }
        fn span_context(&self) -> &SpanContext {
            &self.0
        }
        fn is_recording(&self) -> bool {
            false
        }
        fn set_attribute(&mut self, _attribute: KeyValue) {}
        fn set_status(&mut self, _status: opentelemetry::trace::Status) {}
        fn update_name<T>(&mut self, _new_name: T)
        where
            T: Into<std::borrow::Cow<'static, str>>,
        {
        }
        fn add_link(&mut self, _span_context: SpanContext, _attributes: Vec<KeyValue>) {}
        fn end_with_timestamp(&mut self, _timestamp: std::time::SystemTime) {}
    }

    /// A gRPC call's handler runs in the server span, a child of the
    /// caller's span in the caller's trace.
    #[test]
    fn a_grpc_handler_runs_in_the_callers_trace() {
        use tower::{Layer as _, Service as _, ServiceExt as _};
        let subscriber = crate::telemetry::subscriber(
            false,
            false,
            tracing_subscriber::EnvFilter::new("off"),
            std::io::sink,
        );
        let seen = tracing::subscriber::with_default(subscriber, || {
            let mut service = GrpcServerLayer::new("orders").layer(tower::service_fn(
                |_request: http::Request<()>| async {
                    Ok::<_, std::convert::Infallible>(current_traceparent())
                },
            ));
            let mut request = http::Request::new(());
            *request.uri_mut() = "/ferroshop.orders.v1.OrderService/PlaceOrder"
                .parse()
                .expect("uri");
            request
                .headers_mut()
                .insert(TRACEPARENT, HeaderValue::from_static(VALID));
            futures::executor::block_on(async {
                service.ready().await.expect("ready");
                service.call(request).await.expect("call")
            })
        });
        let seen = seen.expect("the handler runs in a traced span");
        assert!(
            seen.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{seen}"
        );
        assert_ne!(seen, VALID, "the server span is the caller's child");
    }

    #[test]
    fn injecting_without_a_layer_leaves_headers_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        inject(&Span::none(), &mut headers);
        assert_eq!(headers[TRACEPARENT], VALID);
    }
}
