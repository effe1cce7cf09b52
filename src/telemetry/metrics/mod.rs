//! Every `sse_*` instrument, declared once. One [`Metrics`] instance per
//! broker (no globals: tests run several brokers in one process), cloned
//! into whatever records. Recording happens per event or per batch, never per
//! delivered frame: per-stream counting stays in relaxed atomics.

use std::sync::Arc;

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, MeterProvider as _, UpDownCounter},
};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

mod gauges;
mod histograms;
mod hot_counts;
mod record;
mod task_types;
mod zeros;

pub use record::StreamBodyMetrics;
pub use task_types::MAX_TASK_TYPES;

use gauges::Sampled;
use histograms::{
    CLEANUP_DURATION, FRAMES_PER_WRITE_BUCKETS, HistogramSpec, LATENCY_BUCKETS, PUBLISH_LATENCY,
    QUEUE_DEPTH, STORE_BATCH_SIZE, STORE_CHECKPOINT_DURATION, STORE_COMMIT_DURATION,
    STORE_TASK_INDEX_DURATION, TEXT_EVENT_DELTAS, TIME_TO_FIRST_TOKEN, TOKEN_GAP,
};
use hot_counts::HotCounts;

/// Gauges absent until their source reports (Redis-only gauges).
const ABSENT: i64 = -1;

const STORE_OPERATION_KINDS: [&str; 2] = ["write", "read"];

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    sampled: Arc<Sampled>,
    instance: KeyValue,
    /// Per-delivery lag: a Prometheus histogram because it is recorded for
    /// every frame written, and its observe is lock-free (atomics) where
    /// the OpenTelemetry SDK's histogram takes a mutex per record.
    delivery_lag: prometheus::Histogram,
    /// Frames per write of a stream body, the same way: one per write.
    frames_per_write: prometheus::Histogram,
    queue_depth: Histogram<f64>,
    rate_limited: Counter<u64>,
    auth_failures: Counter<u64>,
    jwks_refreshes: Counter<u64>,
    redis_reconnects: Counter<u64>,
    redis_foreign_messages: Counter<u64>,
    redis_instance_id_clashes: Counter<u64>,
    /// `sse.events.{published,delivered,dropped}` and `sse.task.deltas`.
    hot_counts: Arc<HotCounts>,
    connections_opened: Counter<u64>,
    connections_refused: Counter<u64>,
    registry_resets: Counter<u64>,
    connections_closed: Counter<u64>,
    publish_to_route_latency: Histogram<f64>,
    store_batch_size: Histogram<f64>,
    store_commit_duration: Histogram<f64>,
    store_checkpoint_duration: Histogram<f64>,
    store_task_index_duration: Histogram<f64>,
    store_errors: Counter<u64>,
    cleanup_runs: Counter<u64>,
    cleanup_errors: Counter<u64>,
    cleanup_cleaned: Counter<u64>,
    /// The monitoring guide's `sse_total_connections_cleaned`: a Prometheus
    /// counter of our own, because OpenTelemetry's exporter appends
    /// `_total` to every counter name and would serve
    /// `sse_total_connections_cleaned_total`. On `/metrics` only; OTLP
    /// carries the same count as `sse.cleanup.cleaned`.
    total_connections_cleaned: prometheus::IntCounter,
    cleanup_failed: Counter<u64>,
    cleanup_duration: Histogram<f64>,
    replay_events: Counter<u64>,
    time_to_first_token: Histogram<f64>,
    token_gap: Histogram<f64>,
    /// Their `task_type` labels, bounded.
    task_types: task_types::TaskTypeLabels,
    task_tool_events: Counter<u64>,
    task_answer_parts: Counter<u64>,
    text_event_deltas: Histogram<f64>,
    uploads: Counter<u64>,
    uploads_open: UpDownCounter<i64>,
    upload_memory: UpDownCounter<i64>,
    task_finishes: Counter<u64>,
    task_step_ends: Counter<u64>,
    task_tokens: Counter<u64>,
    tls_reloads: Counter<u64>,
    tickets_issued: Counter<u64>,
    tls_handshake_failures: Counter<u64>,
    heap_trims: Counter<u64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
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
        let resource = super::resource(instance_id);
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(prometheus_reader);
        if let Some(reader) = otlp {
            builder = builder.with_reader(reader);
        }
        let provider = builder.build();
        let meter = provider.meter("sse-broker");
        let sampled = Arc::new(Sampled::default());
        let instance = KeyValue::new("instance", instance_id.to_owned());
        Self::register_gauges(&meter, sampled.clone(), instance.clone());
        let hot_counts = Arc::new(HotCounts::default());
        hot_counts.register(&meter);
        let delivery_lag = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "sse_delivery_lag_seconds",
                "Per subscriber: event publish time to the frame handed to that client's socket",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid histogram options");
        registry
            .register(Box::new(delivery_lag.clone()))
            .expect("a fresh registry has no delivery lag histogram yet");
        let frames_per_write = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "sse_stream_frames_per_write",
                "Frames a stream body hands its socket in one write (a burst, or what \
                 joined a held frame under --write-delay-ms)",
            )
            .buckets(FRAMES_PER_WRITE_BUCKETS.to_vec()),
        )
        .expect("valid histogram options");
        registry
            .register(Box::new(frames_per_write.clone()))
            .expect("a fresh registry has no frames-per-write histogram yet");
        let total_connections_cleaned = prometheus::IntCounter::new(
            "sse_total_connections_cleaned",
            "Stale streams closed by the cleanup since start (the monitoring guide's name for \
             sse_cleanup_cleaned_total)",
        )
        .expect("valid counter options");
        registry
            .register(Box::new(total_connections_cleaned.clone()))
            .expect("a fresh registry has no cleaned counter yet");
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_description(description)
                .build()
        };
        let histogram = |spec: &HistogramSpec| {
            meter
                .f64_histogram(spec.name)
                .with_description(spec.description)
                .with_unit(spec.unit)
                .with_boundaries(spec.buckets.to_vec())
                .build()
        };
        let metrics = Self {
            inner: Arc::new(Inner {
                hot_counts,
                connections_opened: counter("sse.connections.opened", "Streams opened"),
                connections_refused: counter(
                    "sse.connections.refused",
                    "New streams the instance refused itself, by reason: full (at \
                     --max-connections: 503 too_many_connections) or shutting_down",
                ),
                registry_resets: counter(
                    "sse.registry.resets",
                    "Times the Registry recovered from a panic by closing every stream",
                ),
                connections_closed: counter("sse.connections.closed", "Streams closed, by reason"),
                publish_to_route_latency: histogram(&PUBLISH_LATENCY),
                store_batch_size: histogram(&STORE_BATCH_SIZE),
                store_commit_duration: histogram(&STORE_COMMIT_DURATION),
                store_checkpoint_duration: histogram(&STORE_CHECKPOINT_DURATION),
                store_task_index_duration: histogram(&STORE_TASK_INDEX_DURATION),
                store_errors: counter(
                    "sse.store.errors",
                    "Event-store operations that failed, by operation and kind (timeout: past \
                     --store-timeout-ms, nothing stored; unconfirmed: a commit not confirmed in \
                     time; error: the database refused or could not be reached)",
                ),
                cleanup_runs: counter(
                    "sse.cleanup",
                    "Cleanup runs, periodic and requested (sse_cleanup_errors_total of them failed)",
                ),
                cleanup_errors: counter(
                    "sse.cleanup.errors",
                    "Cleanup runs that failed: the Registry did not answer, or the run stopped at \
                     its deadline with stale streams left",
                ),
                cleanup_cleaned: counter(
                    "sse.cleanup.cleaned",
                    "Stale streams closed by the Janitor",
                ),
                cleanup_failed: counter(
                    "sse.cleanup.failed",
                    "Stale streams the Janitor failed to close",
                ),
                cleanup_duration: histogram(&CLEANUP_DURATION),
                replay_events: counter(
                    "sse.replay.events",
                    "Stored events replayed to resuming streams, by source: the store, or the \
                     recently routed frames kept in memory",
                ),
                time_to_first_token: histogram(&TIME_TO_FIRST_TOKEN),
                token_gap: histogram(&TOKEN_GAP),
                task_types: task_types::TaskTypeLabels::default(),
                task_tool_events: counter(
                    "sse.task.tool_events",
                    "Tool events kept on tasks, by kind: call (the model asked for a tool), \
                     output (a tool answered), error (a tool failed)",
                ),
                task_answer_parts: counter(
                    "sse.task.answer_parts",
                    "What tasks' answers carry beside their text, kept, by kind: source (a \
                     cited page or document), file (one the model made), reasoning_file (one it \
                     made in its reasoning), data (an app's own data part), custom (content \
                     only the provider knows), steering_message (a person's message into a \
                     running agent); and message_metadata, each change of an answer's message \
                     metadata kept",
                ),
                text_event_deltas: histogram(&TEXT_EVENT_DELTAS),
                uploads: counter(
                    "sse.task.uploads",
                    "Generation uploads (POST /tasks/{id}/stream) ended, by format and outcome",
                ),
                uploads_open: meter
                    .i64_up_down_counter("sse.task.uploads.open")
                    .with_description("Generation uploads being read now")
                    .build(),
                upload_memory: meter
                    .i64_up_down_counter("sse.task.uploads.memory")
                    .with_unit("By")
                    .with_description(
                        "Bytes of unfinished lines uploads hold beyond their free 64 KiB each, \
                         against --upload-memory-mib",
                    )
                    .build(),
                task_tokens: counter(
                    "sse.task.tokens",
                    "Tokens the model providers counted for completed tasks and the ended steps \
                     of agents' answers, as their results say (usage.input_tokens, \
                     usage.output_tokens), by direction",
                ),
                task_finishes: counter(
                    "sse.task.finishes",
                    "Tasks completed, by why their answer stopped as their result says it \
                     (finish_reason in the AI SDK's words; unsaid when it says none)",
                ),
                task_step_ends: counter(
                    "sse.task.step_ends",
                    "Steps of multi-step answers ended (one model call of an agent's loop), \
                     by why the step stopped (finish_reason; unsaid when it says none)",
                ),
                queue_depth: histogram(&QUEUE_DEPTH),
                rate_limited: counter("sse.rate_limited", "Requests refused with 429, by limit"),
                auth_failures: counter("sse.auth.failures", "Requests refused with 401, by reason"),
                jwks_refreshes: counter("sse.jwks.refreshes", "JWKS fetches, by outcome"),
                tickets_issued: counter(
                    "sse.tickets.issued",
                    "Stream tickets asked for (POST /sse/tickets), by outcome; refused \
                     redemptions count in sse.auth.failures (bad_ticket)",
                ),
                tls_reloads: counter(
                    "sse.tls.reloads",
                    "Certificate reloads (a file changed, or SIGHUP), by outcome",
                ),
                tls_handshake_failures: counter(
                    "sse.tls.handshake_failures",
                    "TLS handshakes that failed or timed out, by reason",
                ),
                redis_reconnects: counter(
                    "sse.redis_bridge.reconnects",
                    "Times the Redis link was lost and established again",
                ),
                redis_foreign_messages: counter(
                    "sse.redis_bridge.foreign_messages",
                    "Messages and presence records of another deployment (instances storing in \
                     another database) on this cluster's Redis channels, ignored",
                ),
                redis_instance_id_clashes: counter(
                    "sse.redis_bridge.instance_id_clashes",
                    "Presence refreshes that found this instance's presence record written by \
                     another process: two instances run with one --instance-id",
                ),
                heap_trims: counter(
                    "sse.heap.trims",
                    "Times free heap memory was handed back to the system (jemalloc's arena purge)",
                ),
                provider,
                registry,
                sampled,
                instance,
                delivery_lag,
                frames_per_write,
                total_connections_cleaned,
            }),
        };
        metrics.start_at_zero();
        metrics
    }

    /// Prometheus text exposition of every instrument; histograms nothing
    /// was recorded into yet are shown empty, as a Prometheus client shows
    /// them, so that queries and alerts find them from start-up.
    pub fn render_prometheus(&self) -> Result<String, prometheus::Error> {
        use prometheus::Encoder;
        let mut families = self.inner.registry.gather();
        histograms::add_empty_histograms(&mut families);
        let mut buffer = Vec::new();
        prometheus::TextEncoder::new().encode(&families, &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }

    /// Flushes and stops the OTLP push. Blocking: call from a blocking thread.
    pub fn shutdown_blocking(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.provider.shutdown()
    }

    pub fn instance(&self) -> &KeyValue {
        &self.inner.instance
    }
}
