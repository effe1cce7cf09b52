//! Telemetry, wired once: logs (text or JSON) with an `EnvFilter`, traces
//! and metrics pushed over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
//! and the Prometheus text served at `/metrics`.

mod http_span;
mod metrics;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource, metrics::PeriodicReader, propagation::TraceContextPropagator,
    trace::SdkTracerProvider,
};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

pub use http_span::BrokerRootSpan;
pub use metrics::Metrics;

use crate::config::LogFormat;

const OTLP_METRIC_INTERVAL: Duration = Duration::from_secs(10);

/// Holds the process-wide exporters; flush them with [`TelemetryGuard::shutdown`].
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes pending spans. The tonic exporter lives on the actix thread,
    /// so this must run on a blocking thread or it stalls for its timeout.
    pub async fn shutdown(self) {
        if let Some(provider) = self.tracer_provider {
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

fn otlp_endpoint() -> Option<String> {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Installs the global tracing subscriber (logs, and OTLP spans when
/// configured). Call once per process, inside the actix runtime.
pub fn init_tracing(log_format: LogFormat) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let tracer_provider = otlp_endpoint().and_then(|endpoint| {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| eprintln!("OTLP span exporter disabled: {e}"))
            .ok()?;
        Some(
            SdkTracerProvider::builder()
                .with_resource(Resource::builder().with_service_name("sse-broker").build())
                .with_batch_exporter(exporter)
                .build(),
        )
    });
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let otel_layer = tracer_provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("sse-broker")));
    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let result = match log_format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
    if let Err(error) = result {
        eprintln!("tracing already initialised: {error}");
    }
    TelemetryGuard { tracer_provider }
}

/// The OTLP metric reader, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn otlp_metric_reader() -> Option<PeriodicReader<opentelemetry_otlp::MetricExporter>> {
    let endpoint = otlp_endpoint()?;
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| tracing::warn!(error.message = %e, "OTLP metric exporter disabled"))
        .ok()?;
    Some(
        PeriodicReader::builder(exporter)
            .with_interval(OTLP_METRIC_INTERVAL)
            .build(),
    )
}
