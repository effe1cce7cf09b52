//! Every `sse_*` instrument, declared once. One [`Metrics`] instance per
//! broker (no globals: tests run several brokers in one process), cloned
//! into whatever records. Recording happens per event or per batch, never per
//! delivered frame: per-stream counting stays in relaxed atomics.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, Meter, MeterProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider},
};

use crate::{
    actors::{connection::CloseReason, janitor::CleanupError},
    domain::{StoredEvent, now_ms},
};

/// Seconds, from 0.5 ms to 30 s: publish→deliver and commit durations.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    30.0,
];
const BATCH_SIZE_BUCKETS: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 350.0, 512.0];

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    active_connections: Arc<AtomicI64>,
    instance: KeyValue,
    events_published: Counter<u64>,
    events_delivered: Counter<u64>,
    events_dropped: Counter<u64>,
    connections_opened: Counter<u64>,
    connections_closed: Counter<u64>,
    publish_to_route_latency: Histogram<f64>,
    store_batch_size: Histogram<f64>,
    store_commit_duration: Histogram<f64>,
    cleanup_runs: Counter<u64>,
    cleanup_cleaned: Counter<u64>,
    cleanup_failed: Counter<u64>,
    cleanup_duration: Histogram<f64>,
    replay_events: Counter<u64>,
    time_to_first_token: Histogram<f64>,
    token_gap: Histogram<f64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Replayed-event counter, exposed for the Connection actor.
pub struct ReplayCounter<'a>(&'a Counter<u64>);

impl ReplayCounter<'_> {
    pub fn add(&self, value: u64, attributes: &[KeyValue]) {
        self.0.add(value, attributes);
    }
}

impl Metrics {
    /// Builds the meter provider: Prometheus pull (`/metrics`) always, OTLP
    /// push when `otlp` is given.
    pub fn new(
        instance_id: &str,
        otlp: Option<PeriodicReader<opentelemetry_otlp::MetricExporter>>,
    ) -> Self {
        let registry = prometheus::Registry::new();
        let prometheus_reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .expect("a fresh registry accepts the exporter");
        let resource = Resource::builder()
            .with_service_name("sse-broker")
            .with_attribute(KeyValue::new("service.instance.id", instance_id.to_owned()))
            .build();
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(prometheus_reader);
        if let Some(reader) = otlp {
            builder = builder.with_reader(reader);
        }
        let provider = builder.build();
        let meter = provider.meter("sse-broker");
        let active_connections = Arc::new(AtomicI64::new(0));
        let instance = KeyValue::new("instance", instance_id.to_owned());
        Self::register_gauges(&meter, active_connections.clone(), instance.clone());
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_description(description)
                .build()
        };
        let histogram =
            |name: &'static str, description: &'static str, unit: &'static str, buckets: &[f64]| {
                meter
                    .f64_histogram(name)
                    .with_description(description)
                    .with_unit(unit)
                    .with_boundaries(buckets.to_vec())
                    .build()
            };
        Self {
            inner: Arc::new(Inner {
                events_published: counter(
                    "sse.events.published",
                    "Events accepted and routed, by type",
                ),
                events_delivered: counter(
                    "sse.events.delivered",
                    "Frames queued to streams, by event type",
                ),
                events_dropped: counter(
                    "sse.events.dropped",
                    "Frames not delivered because a stream's queue was full",
                ),
                connections_opened: counter("sse.connections.opened", "Streams opened"),
                connections_closed: counter("sse.connections.closed", "Streams closed, by reason"),
                publish_to_route_latency: histogram(
                    "sse.publish.latency",
                    "Publish request to hand-off to the streams' queues",
                    "s",
                    &LATENCY_BUCKETS,
                ),
                store_batch_size: histogram(
                    "sse.store.batch.size",
                    "Events per group commit",
                    "{event}",
                    &BATCH_SIZE_BUCKETS,
                ),
                store_commit_duration: histogram(
                    "sse.store.commit.duration",
                    "Duration of one group commit",
                    "s",
                    &LATENCY_BUCKETS,
                ),
                cleanup_runs: counter("sse.cleanup.runs", "Janitor cleanup runs, by outcome"),
                cleanup_cleaned: counter(
                    "sse.cleanup.cleaned",
                    "Stale streams closed by the Janitor",
                ),
                cleanup_failed: counter(
                    "sse.cleanup.failed",
                    "Stale streams the Janitor failed to close",
                ),
                cleanup_duration: histogram(
                    "sse.cleanup.duration",
                    "Duration of one cleanup run",
                    "s",
                    &LATENCY_BUCKETS,
                ),
                replay_events: counter(
                    "sse.replay.events",
                    "Stored events replayed to resuming streams",
                ),
                time_to_first_token: histogram(
                    "sse.task.time_to_first_token",
                    "Task creation to its first text, by task type",
                    "s",
                    &LATENCY_BUCKETS,
                ),
                token_gap: histogram(
                    "sse.task.token_gap",
                    "Time between consecutive text writes of a task, by task type",
                    "s",
                    &LATENCY_BUCKETS,
                ),
                provider,
                registry,
                active_connections,
                instance,
            }),
        }
    }

    fn register_gauges(meter: &Meter, active: Arc<AtomicI64>, instance: KeyValue) {
        meter
            .i64_observable_gauge("sse.connections.active")
            .with_description("Open streams on this instance")
            .with_callback(move |observer| {
                observer.observe(
                    active.load(Ordering::Relaxed),
                    std::slice::from_ref(&instance),
                )
            })
            .build();
    }

    pub fn set_active_connections(&self, count: usize) {
        self.inner
            .active_connections
            .store(count as i64, Ordering::Relaxed);
    }

    pub fn record_opened(&self) {
        self.inner.connections_opened.add(1, &[]);
    }

    pub fn record_closed(&self, reason: CloseReason) {
        self.inner
            .connections_closed
            .add(1, &[KeyValue::new("reason", reason.as_str())]);
    }

    /// One event routed: `delivered` frames queued, `dropped` streams closed slow.
    pub fn record_routed(&self, event: &StoredEvent, delivered: u64, dropped: u64) {
        let attributes = [KeyValue::new(
            "event_type",
            opentelemetry::StringValue::from(event.event_type.shared()),
        )];
        self.inner.events_published.add(1, &attributes);
        if delivered > 0 {
            self.inner.events_delivered.add(delivered, &attributes);
        }
        if dropped > 0 {
            self.inner.events_dropped.add(dropped, &attributes);
        }
        let latency_ms = (now_ms() - event.created_at_ms).max(0);
        self.inner
            .publish_to_route_latency
            .record(latency_ms as f64 / 1000.0, &[]);
    }

    pub fn record_commit(&self, events: usize, seconds: f64) {
        self.inner.store_batch_size.record(events as f64, &[]);
        self.inner.store_commit_duration.record(seconds, &[]);
    }

    pub fn record_cleanup(
        &self,
        result: &Result<crate::actors::janitor::CleanupReport, CleanupError>,
        seconds: f64,
    ) {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.inner
            .cleanup_runs
            .add(1, &[KeyValue::new("outcome", outcome)]);
        if let Ok(report) = result {
            self.inner.cleanup_cleaned.add(report.cleaned, &[]);
            self.inner.cleanup_failed.add(report.failed, &[]);
        }
        self.inner.cleanup_duration.record(seconds, &[]);
    }

    pub fn record_time_to_first_token(&self, task_type: &str, seconds: f64) {
        self.inner.time_to_first_token.record(
            seconds.max(0.0),
            &[KeyValue::new("task_type", task_type.to_owned())],
        );
    }

    pub fn record_token_gap(&self, task_type: &str, seconds: f64) {
        self.inner.token_gap.record(
            seconds.max(0.0),
            &[KeyValue::new("task_type", task_type.to_owned())],
        );
    }

    pub fn replay_events(&self) -> ReplayCounter<'_> {
        ReplayCounter(&self.inner.replay_events)
    }

    /// Prometheus text exposition of every instrument.
    pub fn render_prometheus(&self) -> Result<String, prometheus::Error> {
        use prometheus::Encoder;
        let mut buffer = Vec::new();
        prometheus::TextEncoder::new().encode(&self.inner.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }

    /// Flushes and stops the OTLP push. Blocking: call from a blocking thread.
    pub fn shutdown_blocking(&self) {
        let _ = self.inner.provider.shutdown();
    }

    pub fn instance(&self) -> &KeyValue {
        &self.inner.instance
    }
}
