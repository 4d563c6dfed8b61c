//! Logging and traces: the process-wide tracing subscriber, the server span
//! and the one line logged per request (method, route, status, latency,
//! request id), and the `[telemetry]` settings that turn span export on.
//!
//! The subscriber has two layers, each with its own filter: the log lines
//! (`RUST_LOG`; JSON with `SHOP_LOG_FORMAT=json`, carrying `trace_id` and
//! `span_id`), and OpenTelemetry, which sees ferroshop's own spans at
//! `info` and above whatever `RUST_LOG` says, so a quiet log never breaks
//! a trace. Export is off until [`start_export`] finds an endpoint; until
//! then OpenTelemetry sees only the spans that start a service's part of a
//! trace, enough for the ids in logs and headers.

use std::io::IsTerminal;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::TracerProvider as _;
use serde::{Deserialize, Serialize};
use tracing::field::Empty;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Instrument, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{DynFilterFn, EnvFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::layer::{Context as FilterContext, Filter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

use crate::config::ConfigError;
use crate::{metrics, trace};

mod export;
pub mod log_format;

pub use export::{Export, ExportError, exporting};

/// The filter used when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn,h2=warn,tower=warn";

/// The instrumentation scope of ferroshop's spans.
const TRACER_NAME: &str = "ferroshop";

/// `[telemetry]`: where spans are exported and how many. Export is off
/// unless `otlp_endpoint` (or the standard `OTEL_EXPORTER_OTLP_ENDPOINT`)
/// names a collector; trace and span ids are in the logs either way.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The OTLP/gRPC endpoint spans are sent to (`http://collector:4317`);
    /// when unset, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; when none is set, nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// The share of new traces exported, 0.0 to 1.0 (a trace whose caller
    /// decided is exported as the caller decided). Unset: the standard
    /// `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`, or every trace.
    pub sampling_ratio: Option<f64>,
    /// How long one export call may take, in milliseconds (default 10000).
    pub export_timeout_ms: u64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            sampling_ratio: None,
            export_timeout_ms: 10_000,
        }
    }
}

impl TelemetrySettings {
    /// Checks what serde cannot.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the `telemetry.` key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.otlp_endpoint {
            check_endpoint(endpoint)
                .map_err(|problem| ConfigError::invalid("telemetry.otlp_endpoint", problem))?;
        }
        if let Some(ratio) = self.sampling_ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            return Err(ConfigError::invalid(
                "telemetry.sampling_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        if self.export_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "telemetry.export_timeout_ms",
                "must be positive",
            ));
        }
        Ok(())
    }

    /// The endpoint spans go to: the setting, else the standard variables
    /// read through `env`; `None` (export off) when none is set or empty.
    pub fn endpoint(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.otlp_endpoint
            .clone()
            .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .map(|endpoint| endpoint.trim().to_owned())
            .filter(|endpoint| !endpoint.is_empty())
    }
}

/// Whether `endpoint` is one the gRPC exporter can reach.
fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    let uri: http::Uri = endpoint
        .trim()
        .parse()
        .map_err(|_| "must be a URL such as http://collector:4317")?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(_)) => Ok(()),
        (Some("https"), _) => Err("https is not supported; use http:// (or a collector sidecar)"),
        _ => Err("must be a URL such as http://collector:4317"),
    }
}

/// Installs the global subscriber: `RUST_LOG`-style filtering, JSON lines
/// when `SHOP_LOG_FORMAT=json`, otherwise a human format (coloured on a
/// terminal); and the OpenTelemetry layer, exporting nothing until
/// [`start_export`].
///
/// Calling it again (as tests and the all-in-one binary may) is harmless.
pub fn init() {
    let json =
        std::env::var("SHOP_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = !json && std::io::stderr().is_terminal();
    let result = subscriber(json, ansi, filter, std::io::stderr).try_init();
    // An error only means a subscriber is already installed.
    drop(result);
}

/// The subscriber [`init`] installs, writing lines to `writer`.
pub(crate) fn subscriber<W>(
    json: bool,
    ansi: bool,
    filter: EnvFilter,
    writer: W,
) -> impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .map_event_format(log_format::WithTraceIds)
            .with_writer(writer)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .with_filter(filter)
            .boxed()
    };
    let tracer = export::provider().tracer(TRACER_NAME);
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        // No busy/idle clocks read at every poll of every span.
        .with_tracked_inactivity(false)
        .with_filter(traced_filter());
    Registry::default().with(spans).with(logs)
}

/// The OpenTelemetry layer's filter: [`is_traced`], asked at every span
/// and event rather than once per callsite.
///
/// With two per-layer filters, a callsite both always enable is never
/// asked again, and the span then takes whatever "disabled" marks the last
/// refused metadata left on this thread (sqlx asks `enabled!` before every
/// query and logs nothing when it is fast, leaving this layer's "no"
/// behind): the span would be lost to the trace. Answering
/// "sometimes" here makes every callsite ask, so each span and event is
/// judged on its own metadata.
fn traced_filter<S>() -> impl Filter<S>
where
    S: Subscriber,
{
    DynFilterFn::new(|metadata: &Metadata<'_>, _: &FilterContext<'_, S>| is_traced(metadata))
        .with_callsite_filter(|_| Interest::sometimes())
        // Nothing below info is traced: `debug!` and `log` records below
        // `RUST_LOG` stay as cheap as without this layer.
        .with_max_level_hint(LevelFilter::INFO)
}

/// What becomes part of a trace: ferroshop's spans at `info` and above,
/// and its warnings and errors (as span events) — while spans are
/// exported. With export off, only the spans that start a service's part
/// of a trace ([`starts_part`]): they hold the trace and span ids the logs
/// and the propagated headers need (the spans below them see their
/// context as the current one), and the spans and events below them would
/// only be built to be dropped — per request, the most expensive thing a
/// service did that nobody asked for.
fn is_traced(metadata: &Metadata<'_>) -> bool {
    let limit = if metadata.is_span() {
        Level::INFO
    } else {
        Level::WARN
    };
    metadata.target().starts_with("shop_")
        && *metadata.level() <= limit
        && (exporting() || starts_part(metadata))
}

/// Whether `metadata` is that of a span starting a service's part of a
/// trace — a server span, a worker's root — which names its service in a
/// `service` field (see [`crate::trace`]).
fn starts_part(metadata: &Metadata<'_>) -> bool {
    metadata.is_span() && metadata.fields().field(trace::SERVICE_ATTRIBUTE).is_some()
}

/// Starts exporting this process's spans as `service` (their
/// `service.name`) when `settings` (or the standard `OTEL_` variables)
/// name an endpoint; `Ok(None)` leaves export off. Call it once, after
/// [`init`]; shut the returned [`Export`] down last, so the spans of the
/// shutdown reach the collector.
///
/// # Errors
/// [`ExportError`] when a setting is wrong or the exporter cannot start.
pub fn start_export(
    service: &'static str,
    settings: &TelemetrySettings,
) -> Result<Option<Export>, ExportError> {
    settings.validate().map_err(|err| ExportError::Invalid {
        key: "telemetry",
        problem: err.to_string(),
    })?;
    export::start(service, settings)
}

/// Flushes and stops `export` (when on) off the async threads.
pub async fn shutdown(export: Option<Export>) {
    if let Some(export) = export
        && let Err(err) = tokio::task::spawn_blocking(move || export.shutdown_blocking()).await
    {
        tracing::warn!(error = %err, "span export shutdown failed");
    }
}

/// Routes polled by probes and scrapers: logged at debug so they do not drown
/// the request log.
fn is_probe(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz" | "/metrics")
}

/// Middleware: runs the request inside its server span (the child of the
/// caller's `traceparent`, when it sent one) carrying the request id and
/// route, then logs one line and records the request metrics.
pub async fn observe(
    State(service): State<&'static str>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // Clones share their text: nothing is copied on the request path.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let request_id = request.headers().get("x-request-id").cloned();
    let request_id = request_id
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "request",
        service,
        %method,
        route,
        request_id,
        otel.kind = "server",
        otel.name = Empty,
        otel.status_code = Empty,
        http.response.status_code = Empty,
    );
    if exporting() {
        span.record("otel.name", format!("{method} {route}"));
    }
    trace::start_from(&span, service, trace::extract(request.headers()));
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
    span.in_scope(|| {
        if is_probe(route) {
            tracing::debug!(status, latency_ms, "request");
        } else if status >= 500 {
            tracing::warn!(status, latency_ms, "request");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
    });
    metrics::record_request(service, &method, route, status, elapsed);
    response
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    use super::*;

    /// Lines written by a subscriber under test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Self;
        fn make_writer(&'w self) -> Self {
            self.clone()
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().expect("lock").clone();
            String::from_utf8(bytes)
                .expect("utf-8")
                .lines()
                .map(|line| serde_json::from_str(line).expect("a JSON line"))
                .collect()
        }
    }

    /// The trace and span ids of `span`'s OpenTelemetry context, as hex.
    fn ids_of(span: &tracing::Span) -> (String, String) {
        let context = span.context();
        let span = context.span();
        let ids = span.span_context();
        (ids.trace_id().to_string(), ids.span_id().to_string())
    }

    /// With export off, a JSON line inside a span carries the span's trace
    /// and span ids, one outside any span carries none, and a quiet
    /// `RUST_LOG` still leaves the span its ids.
    #[test]
    fn json_lines_carry_trace_ids_with_export_off() {
        let captured = Captured::default();
        let subscriber = subscriber(true, false, EnvFilter::new("warn"), captured.clone());
        let expected = tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("outside");
            let span = tracing::info_span!("request", service = "test");
            let ids = ids_of(&span);
            span.in_scope(|| {
                tracing::warn!(answer = 42, "inside");
                tracing::info!("filtered out by RUST_LOG");
            });
            ids
        });
        assert!(!exporting(), "no exporter runs");
        let lines = captured.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["message"], "outside");
        assert!(lines[0].get(log_format::TRACE_ID_FIELD).is_none());
        assert_eq!(lines[1]["message"], "inside");
        assert_eq!(lines[1]["answer"], 42);
        assert_eq!(lines[1][log_format::TRACE_ID_FIELD], expected.0.as_str());
        assert_eq!(lines[1][log_format::SPAN_ID_FIELD], expected.1.as_str());
        assert_ne!(expected.0, "00000000000000000000000000000000");
    }

    /// Metadata one layer refused without a span or event following (an
    /// `enabled!` check) leaves no mark on the next span: it is traced.
    #[test]
    fn a_span_after_refused_metadata_is_still_traced() {
        let subscriber = subscriber(false, false, EnvFilter::new("info"), std::io::sink);
        tracing::subscriber::with_default(subscriber, || {
            // Twice: the second time, each callsite's interest is cached.
            for _ in 0..2 {
                // As sqlx asks before each query: the logs want it, the
                // trace does not.
                assert!(tracing::enabled!(target: "sqlx::query", Level::WARN));
                let span = tracing::info_span!("request", service = "test");
                assert!(
                    span.in_scope(log_format::current_ids).is_some(),
                    "the span is traced"
                );
            }
        });
    }

    /// With export off, a span below one starting a service's part gets no
    /// trace context of its own: the lines logged in it carry the part's
    /// ids, and a call made in it passes the part's span on as the parent.
    /// A span starting nothing, outside any part, has no ids at all.
    #[test]
    fn with_export_off_only_spans_starting_a_part_are_traced() {
        let captured = Captured::default();
        let subscriber = subscriber(true, false, EnvFilter::new("info"), captured.clone());
        let (part_ids, headers) = tracing::subscriber::with_default(subscriber, || {
            let part = tracing::info_span!("request", service = "test");
            let part_ids = ids_of(&part);
            let headers = part.in_scope(|| {
                let below = tracing::info_span!("upstream call", upstream = "other");
                assert!(
                    !below.context().span().span_context().is_valid(),
                    "the span below has no context of its own"
                );
                let mut headers = http::HeaderMap::new();
                trace::inject(&below, &mut headers);
                below.in_scope(|| tracing::info!("below"));
                headers
            });
            let alone = tracing::info_span!("saga.step");
            alone.in_scope(|| {
                assert_eq!(log_format::current_ids(), None);
                tracing::info!("alone");
            });
            (part_ids, headers)
        });
        assert!(!exporting(), "no exporter runs");
        let traceparent = headers
            .get(trace::TRACEPARENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        assert_eq!(
            traceparent,
            Some(format!("00-{}-{}-00", part_ids.0, part_ids.1)),
            "the part's span is the callee's parent"
        );
        let lines = captured.lines();
        let below = lines
            .iter()
            .find(|line| line["message"] == "below")
            .expect("the line logged below the part");
        assert_eq!(below[log_format::TRACE_ID_FIELD], part_ids.0.as_str());
        assert_eq!(below[log_format::SPAN_ID_FIELD], part_ids.1.as_str());
        let alone = lines
            .iter()
            .find(|line| line["message"] == "alone")
            .expect("the line logged in the span alone");
        assert!(alone.get(log_format::TRACE_ID_FIELD).is_none(), "{alone}");
    }

    #[test]
    fn settings_validate_and_fall_back_to_the_standard_variables() {
        let mut settings = TelemetrySettings::default();
        assert!(settings.validate().is_ok());
        let none = |_: &str| None;
        assert_eq!(settings.endpoint(none), None);
        let standard = |key: &str| {
            (key == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://otel:4317".to_owned())
        };
        assert_eq!(
            settings.endpoint(standard).as_deref(),
            Some("http://otel:4317")
        );
        settings.otlp_endpoint = Some("http://collector:4317".to_owned());
        assert!(settings.validate().is_ok());
        assert_eq!(
            settings.endpoint(standard).as_deref(),
            Some("http://collector:4317")
        );
        for bad in ["collector:4317", "https://collector:4317", "not a url"] {
            settings.otlp_endpoint = Some(bad.to_owned());
            let err = settings.validate().expect_err(bad).to_string();
            assert!(err.contains("telemetry.otlp_endpoint"), "{err}");
        }
        settings.otlp_endpoint = None;
        settings.sampling_ratio = Some(1.5);
        assert!(settings.validate().is_err());
    }
}
