//! Span export over OTLP/gRPC, off until [`start`] turns it on.
//!
//! The tracer provider is built once, with the subscriber, before any
//! settings are read; its sampler and its span processor look here for
//! what export does. Until export starts, the sampler keeps the caller's
//! decision (parent-based, new traces unsampled) and spans go nowhere:
//! they still get ids, for the logs and the headers passed on.
//!
//! The OTLP exporter is tonic's, and tonic needs a tokio runtime: the
//! batch processor exports from a thread of its own, so the exporter runs
//! on a small runtime on another thread of its own (`otlp-export`), which
//! also outlives the service's runtime long enough to flush at shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use opentelemetry::trace::{Link, Span as _, SpanKind, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SamplingResult, SdkTracerProvider, ShouldSample, Span, SpanData,
    SpanExporter, SpanProcessor,
};
use tokio::sync::oneshot;

use super::TelemetrySettings;
use crate::trace::ServiceName;

/// Whether spans are exported (see [`exporting`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);
/// The sampler once export is on.
static SAMPLER: OnceLock<Sampler> = OnceLock::new();
/// The batch processor once export is on.
static BATCH: OnceLock<BatchSpanProcessor> = OnceLock::new();
/// The sampler while export is off: the caller's decision passes on
/// unchanged (so a service that exports further down still sees it), and a
/// trace that starts here is not sampled.
static OFF: LazyLock<Sampler> =
    LazyLock::new(|| Sampler::ParentBased(Box::new(Sampler::AlwaysOff)));

/// Whether spans are exported from this process.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The process's tracer provider: its sampler and processor follow
/// [`start`].
pub(super) fn provider() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(Deferred)
        .with_span_processor(Processor)
        .build()
}

/// Why export could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A setting (or a standard `OTEL_` variable) is wrong.
    #[error("{key}: {problem}")]
    Invalid {
        /// The setting or variable at fault.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// Export was started before in this process.
    #[error("span export is already on in this process")]
    AlreadyStarted,
    /// The exporter or its runtime could not be built.
    #[error("cannot start span export: {0}")]
    Build(String),
}

/// Export that is on; [`Export::shutdown`] flushes what is queued.
#[derive(Debug)]
pub struct Export {
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Export {
    /// Sends the spans still queued, then stops the exporter's runtime.
    /// Blocks until then (at most the export timeout): call it from a
    /// blocking context ([`tokio::task::spawn_blocking`]).
    pub fn shutdown_blocking(self) {
        if let Some(batch) = BATCH.get()
            && let Err(err) = batch.shutdown()
        {
            tracing::warn!(error = %err, "span export did not flush");
        }
        EXPORTING.store(false, Ordering::Relaxed);
        self.stop.send(()).ok();
        drop(self.thread.join());
    }
}

/// Starts exporting the spans of `service` (the `service.name` of every
/// span this process exports) to the OTLP/gRPC endpoint of `settings`;
/// `Ok(None)` when none is configured.
///
/// # Errors
/// [`ExportError`] when a setting is wrong, export is on already, or the
/// exporter cannot be built.
pub fn start(
    service: &'static str,
    settings: &TelemetrySettings,
) -> Result<Option<Export>, ExportError> {
    start_in(service, settings, |key| std::env::var(key).ok())
}

/// [`start`] with the process environment read through `env`.
fn start_in(
    service: &'static str,
    settings: &TelemetrySettings,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Export>, ExportError> {
    let Some(endpoint) = settings.endpoint(&env) else {
        return Ok(None);
    };
    let sampler = sampler(settings.sampling_ratio, &env)?;
    if BATCH.get().is_some() {
        return Err(ExportError::AlreadyStarted);
    }
    let timeout = Duration::from_millis(settings.export_timeout_ms);
    let (exporter, export) = on_own_runtime(endpoint.clone(), timeout)?;
    let mut exporter = exporter;
    exporter.set_resource(
        &Resource::builder()
            .with_service_name(service)
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let batch = BatchSpanProcessor::builder(exporter).build();
    if BATCH.set(batch).is_err() {
        return Err(ExportError::AlreadyStarted);
    }
    // Set once, with the processor above.
    drop(SAMPLER.set(sampler));
    EXPORTING.store(true, Ordering::Relaxed);
    tracing::info!(service, %endpoint, "exporting spans over OTLP/gRPC");
    Ok(Some(export))
}

/// The sampler: `ratio` of new traces (parent-based: a caller's decision
/// is kept), or when no ratio is configured the standard
/// `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`, or every trace.
fn sampler(
    ratio: Option<f64>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Sampler, ExportError> {
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    if let Some(ratio) = ratio {
        return Ok(parent_based(Sampler::TraceIdRatioBased(ratio)));
    }
    let Some(name) = env("OTEL_TRACES_SAMPLER") else {
        return Ok(parent_based(Sampler::AlwaysOn));
    };
    let ratio = || match env("OTEL_TRACES_SAMPLER_ARG") {
        None => Ok(1.0),
        Some(arg) => arg
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|ratio| (0.0..=1.0).contains(ratio))
            .ok_or_else(|| ExportError::Invalid {
                key: "OTEL_TRACES_SAMPLER_ARG",
                problem: format!("{arg:?} is not a ratio between 0 and 1"),
            }),
    };
    Ok(match name.trim() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        other => {
            return Err(ExportError::Invalid {
                key: "OTEL_TRACES_SAMPLER",
                problem: format!(
                    "{other:?} is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
                ),
            });
        }
    })
}

/// Builds the OTLP exporter on a runtime of its own, on a thread of its
/// own that runs until [`Export::shutdown_blocking`].
fn on_own_runtime(endpoint: String, timeout: Duration) -> Result<(OnRuntime, Export), ExportError> {
    let (built_tx, built) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("otlp-export".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    drop(built_tx.send(Err(err.to_string())));
                    return;
                }
            };
            runtime.block_on(async move {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint)
                    .with_timeout(timeout)
                    .build()
                    .map_err(|err| err.to_string());
                let handle = tokio::runtime::Handle::current();
                drop(built_tx.send(exporter.map(|exporter| OnRuntime {
                    inner: Arc::new(exporter),
                    runtime: handle,
                })));
                // Runs the exports spawned here until told to stop (or
                // until the process ends without stopping it).
                drop(stopped.await);
            });
        })
        .map_err(|err| ExportError::Build(err.to_string()))?;
    match built.recv() {
        Ok(Ok(exporter)) => Ok((exporter, Export { stop, thread })),
        Ok(Err(err)) => Err(ExportError::Build(err)),
        Err(_) => Err(ExportError::Build(
            "the export thread ended before building the exporter".to_owned(),
        )),
    }
}

/// The OTLP exporter, its exports run on its own runtime.
#[derive(Debug)]
struct OnRuntime {
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    runtime: tokio::runtime::Handle,
}

impl SpanExporter for OnRuntime {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let inner = Arc::clone(&self.inner);
        match self
            .runtime
            .spawn(async move { inner.export(batch).await })
            .await
        {
            Ok(result) => result,
            Err(err) => Err(OTelSdkError::InternalFailure(err.to_string())),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Before any export: the exporter is not shared yet.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// The sampler the provider is built with: [`OFF`] until export starts.
#[derive(Debug, Clone)]
struct Deferred;

impl ShouldSample for Deferred {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        SAMPLER.get().unwrap_or(&OFF).should_sample(
            parent_context,
            trace_id,
            name,
            span_kind,
            attributes,
            links,
        )
    }
}

/// The processor the provider is built with: names the service of every
/// span below one that starts a service's part of a trace
/// ([`ServiceName`]), and hands finished spans to the batch processor once
/// export is on.
#[derive(Debug)]
struct Processor;

impl SpanProcessor for Processor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        if let Some(service) = ServiceName::attribute_below(cx) {
            span.set_attribute(service);
        }
    }

    fn on_end(&self, span: SpanData) {
        if let Some(batch) = BATCH.get() {
            batch.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        BATCH.get().map_or(Ok(()), BatchSpanProcessor::force_flush)
    }

    /// The batch processor is shut down by [`Export::shutdown_blocking`].
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_sampler_follows_the_setting_then_the_standard_variables() {
        let debug = |sampler: Sampler| format!("{sampler:?}");
        assert_eq!(
            debug(sampler(Some(0.25), env(&[("OTEL_TRACES_SAMPLER", "always_off")])).expect("ok")),
            debug(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                0.25
            ))))
        );
        assert_eq!(
            debug(sampler(None, env(&[])).expect("ok")),
            debug(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        );
        assert_eq!(
            debug(
                sampler(
                    None,
                    env(&[
                        ("OTEL_TRACES_SAMPLER", "traceidratio"),
                        ("OTEL_TRACES_SAMPLER_ARG", "0.5")
                    ])
                )
                .expect("ok")
            ),
            debug(Sampler::TraceIdRatioBased(0.5))
        );
        assert!(sampler(None, env(&[("OTEL_TRACES_SAMPLER", "sometimes")])).is_err());
        assert!(
            sampler(
                None,
                env(&[
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "2")
                ])
            )
            .is_err()
        );
    }

    #[test]
    fn without_an_endpoint_nothing_starts() {
        let export = start_in("test", &TelemetrySettings::default(), env(&[]));
        assert!(matches!(export, Ok(None)));
        assert!(!exporting());
        assert!(BATCH.get().is_none(), "no exporter runs");
    }
}
