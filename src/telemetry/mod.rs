//! Telemetry, wired once: logs (text or JSON) with an `EnvFilter`, traces
//! and metrics pushed over OTLP as the standard `OTEL_*` variables say (see
//! [`otlp`]), and the Prometheus text served at `/metrics`.

mod deliberate_closes;
mod http_span;
mod log_throttle;
mod metrics;
mod otlp;
mod sdk_after_flush;

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::{
    Resource, error::OTelSdkError, metrics::PeriodicReader, propagation::TraceContextPropagator,
    trace::SdkTracerProvider,
};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

pub use http_span::{BrokerRootSpan, ClientAddress};
pub use log_throttle::LogThrottle;
pub use metrics::{MAX_TASK_TYPES, Metrics, StreamBodyMetrics};

use crate::{config::LogFormat, domain::TraceParent};

/// Unless `OTEL_METRIC_EXPORT_INTERVAL` says otherwise (the SDK's own
/// default, 60 s, is coarse for a live dashboard).
const OTLP_METRIC_INTERVAL: Duration = Duration::from_secs(10);

/// Whether spans leave the process: per-event spans (`deliver`) are only
/// built when someone will see them.
static TRACES_EXPORTED: AtomicBool = AtomicBool::new(false);

pub fn traces_exported() -> bool {
    TRACES_EXPORTED.load(Ordering::Relaxed)
}

/// The resource of every span and metric: `service.name` (unless
/// `OTEL_SERVICE_NAME` names it), `service.instance.id`, and whatever
/// `OTEL_RESOURCE_ATTRIBUTES` adds.
pub fn resource(instance_id: &str) -> Resource {
    let mut builder = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.instance.id",
        instance_id.to_owned(),
    ));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        builder = builder.with_service_name("sse-broker");
    }
    builder.build()
}

/// The current span's W3C `traceparent`, when traces are exported.
pub fn current_traceparent() -> Option<TraceParent> {
    if !traces_exported() {
        return None;
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    TraceParent::parse(&format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8()
    ))
}

/// The remote span a stored `traceparent` names.
pub fn span_context_of(parent: &TraceParent) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let mut parts = parent.as_str().split('-').skip(1);
    let trace_id = TraceId::from_hex(parts.next()?).ok()?;
    let span_id = SpanId::from_hex(parts.next()?).ok()?;
    let flags = u8::from_str_radix(parts.next()?, 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// Makes `span` a child of the stored `parent` (another process's span).
pub fn adopt_parent(span: &tracing::Span, parent: &TraceParent) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if let Some(remote) = span_context_of(parent) {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
}

/// Links `span` to the stored `origin` (a replayed event's publish).
pub fn link_to(span: &tracing::Span, origin: &TraceParent) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if let Some(remote) = span_context_of(origin) {
        span.add_link(remote);
    }
}

/// Holds the process-wide exporters; flush them with [`TelemetryGuard::shutdown`].
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    sdk_after_flush: sdk_after_flush::SdkAfterFlush,
}

/// How long the exit waits for the last spans and metrics to reach the
/// collector. The exporters' own timeouts, one after the other, kept a
/// broker whose collector had gone silent (a black-holed address) from
/// exiting for ~11 s, most of an orchestrator's grace period.
const FLUSH_BUDGET: Duration = Duration::from_secs(3);

/// One exporter's last flush, run on a thread of its own.
type Flush = Box<dyn FnOnce() -> Result<(), OTelSdkError> + Send>;

impl TelemetryGuard {
    /// Flushes pending spans and metrics, both at once, for at most
    /// [`FLUSH_BUDGET`]. Each flush blocks (the tonic exporter lives on the
    /// actix thread), so each runs on a thread of its own; one still
    /// waiting on the collector when the budget ends is left behind, and
    /// ends with the process.
    pub async fn shutdown(self, metrics: Metrics) {
        // The SDK's own lines about this flush (and, after it, about the
        // exports the runtime's end cuts off) give way to the warnings below.
        self.sdk_after_flush.flush_begins();
        let (done, mut finished) =
            tokio::sync::mpsc::unbounded_channel::<(&str, Result<(), FlushFailure>)>();
        let mut flushes: Vec<(&str, Flush)> =
            vec![("metrics", Box::new(move || metrics.shutdown_blocking()))];
        if let Some(provider) = self.tracer_provider {
            flushes.push((
                "spans",
                Box::new(move || provider.shutdown_with_timeout(FLUSH_BUDGET)),
            ));
        }
        let mut pending = 0;
        for (signal, flush) in flushes {
            let done = done.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{signal}-flush"))
                .spawn(move || {
                    let _ = done.send((signal, flush().map_err(FlushFailure::from)));
                });
            pending += usize::from(spawned.is_ok());
        }
        let all_finished = async {
            let mut timed_out = false;
            for _ in 0..pending {
                match finished.recv().await {
                    // The SDK's own deadline, the budget's: said below, once.
                    Some((_, Err(FlushFailure::TimedOut))) => timed_out = true,
                    Some((signal, Err(FlushFailure::Failed(error)))) => {
                        tracing::warn!(signal, %error, "the last OTLP export failed; exiting without it")
                    }
                    _ => {}
                }
            }
            timed_out
        };
        if tokio::time::timeout(FLUSH_BUDGET, all_finished)
            .await
            .unwrap_or(true)
        {
            tracing::warn!(
                budget_ms = FLUSH_BUDGET.as_millis() as u64,
                "the OTLP collector did not take the last spans and metrics in time; exiting without them"
            );
        }
    }
}

/// Why a last flush did not end well: its deadline passed (the budget's
/// warning says so), or the collector refused it.
enum FlushFailure {
    TimedOut,
    Failed(String),
}

impl From<OTelSdkError> for FlushFailure {
    fn from(error: OTelSdkError) -> Self {
        match error {
            OTelSdkError::Timeout(_) => Self::TimedOut,
            // The batch span processor reports its exporter's timeout in
            // its own words: `Shutdown errors: [Timeout(3s)]`.
            OTelSdkError::InternalFailure(reason) if reason.contains("Timeout(") => Self::TimedOut,
            other => Self::Failed(other.to_string()),
        }
    }
}

/// Installs the global tracing subscriber (logs, and OTLP spans when
/// configured). Call once per process, inside the actix runtime.
pub fn init_tracing(log_format: LogFormat, instance_id: &str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let plan = &otlp::OtlpEnv::get().traces;
    let (tracer_provider, build_error) = match plan.export.as_ref().map(otlp::span_exporter) {
        Some(Ok(exporter)) => {
            let provider = SdkTracerProvider::builder()
                .with_resource(resource(instance_id))
                .with_batch_exporter(exporter)
                .build();
            (Some(provider), None)
        }
        Some(Err(error)) => (None, Some(error)),
        None => (None, None),
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    TRACES_EXPORTED.store(tracer_provider.is_some(), Ordering::Relaxed);
    let otel_layer = tracer_provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("sse-broker")));
    let sdk_after_flush = sdk_after_flush::SdkAfterFlush::default();
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(deliberate_closes::DeliberateCloses)
        .with(sdk_after_flush.clone())
        .with(otel_layer);
    let result = match log_format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
        // Colours only for a terminal: in a file or a journal the escape
        // codes would sit between the words a log search looks for.
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
            )
            .try_init(),
    };
    if let Err(error) = result {
        eprintln!("tracing already initialised: {error}");
    }
    // Only now is there a subscriber to say how the export went.
    plan.report(otlp::Signal::Traces, build_error.as_ref());
    TelemetryGuard {
        tracer_provider,
        sdk_after_flush,
    }
}

/// The OTLP metric reader, when the environment exports metrics.
pub fn otlp_metric_reader() -> Option<PeriodicReader<opentelemetry_otlp::MetricExporter>> {
    let plan = &otlp::OtlpEnv::get().metrics;
    let built = plan.export.as_ref().map(otlp::metric_exporter);
    plan.report(
        otlp::Signal::Metrics,
        built.as_ref().and_then(|b| b.as_ref().err()),
    );
    let exporter = built?.ok()?;
    let mut reader = PeriodicReader::builder(exporter);
    if std::env::var_os("OTEL_METRIC_EXPORT_INTERVAL").is_none() {
        reader = reader.with_interval(OTLP_METRIC_INTERVAL);
    }
    Some(reader.build())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_flush_out_of_time_is_told_from_one_refused() {
        let timed_out = |error| matches!(FlushFailure::from(error), FlushFailure::TimedOut);
        assert!(timed_out(OTelSdkError::Timeout(Duration::from_secs(3))));
        assert!(timed_out(OTelSdkError::InternalFailure(
            "Shutdown errors: [Timeout(3s)]".into()
        )));
        assert!(!timed_out(OTelSdkError::InternalFailure(
            "connection refused".into()
        )));
        assert!(!timed_out(OTelSdkError::AlreadyShutdown));
    }
}
