//! Every `sse_*` instrument, declared once. One [`Metrics`] instance per
//! broker (no globals: tests run several brokers in one process), cloned
//! into whatever records. Recording happens per event or per batch, never per
//! delivered frame: per-stream counting stays in relaxed atomics.

use std::sync::{
    Arc,
    atomic::{AtomicI64, AtomicU64, Ordering},
};

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, Meter, MeterProvider as _},
};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

use crate::{
    actors::{janitor::CleanupError, registry::AgeBuckets},
    domain::{StoredEvent, now_ms},
    stream::CloseReason,
};

/// Seconds, from 0.5 ms to 30 s: publish→deliver and commit durations.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    30.0,
];
const BATCH_SIZE_BUCKETS: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 350.0, 512.0];
/// Frames waiting in one stream's queue (the default capacity is 1024).
const QUEUE_DEPTH_BUCKETS: [f64; 10] = [
    0.0, 1.0, 4.0, 16.0, 64.0, 128.0, 256.0, 512.0, 768.0, 1024.0,
];
/// Gauges absent until their source reports (Redis-only gauges).
const ABSENT: i64 = -1;

/// Values sampled by the actors and read by the observable gauges at
/// collection time: relaxed atomics, so reporting costs nothing between
/// scrapes.
#[derive(Debug)]
struct Sampled {
    active_connections: AtomicI64,
    /// stale, active, long_lived, very_old.
    by_age: [AtomicI64; 4],
    redis_connections: AtomicI64,
    redis_bridge_up: AtomicI64,
    cleanup_error_rate_bits: AtomicU64,
    cleanup_running: AtomicI64,
    cleanup_last_run_secs_bits: AtomicU64,
    health_status: AtomicI64,
    /// write, read: 0 no, 1 failing recently, 2 failing earlier.
    store_failing: [AtomicI64; 2],
    store_oldest_operation_secs_bits: AtomicU64,
}

impl Default for Sampled {
    fn default() -> Self {
        Self {
            active_connections: AtomicI64::new(0),
            by_age: Default::default(),
            redis_connections: AtomicI64::new(ABSENT),
            redis_bridge_up: AtomicI64::new(ABSENT),
            cleanup_error_rate_bits: AtomicU64::new(0f64.to_bits()),
            cleanup_running: AtomicI64::new(0),
            cleanup_last_run_secs_bits: AtomicU64::new(0f64.to_bits()),
            health_status: AtomicI64::new(0),
            store_failing: Default::default(),
            store_oldest_operation_secs_bits: AtomicU64::new(0f64.to_bits()),
        }
    }
}

const AGE_BUCKETS: [&str; 4] = ["stale", "active", "long_lived", "very_old"];
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
    queue_depth: Histogram<f64>,
    rate_limited: Counter<u64>,
    auth_failures: Counter<u64>,
    jwks_refreshes: Counter<u64>,
    redis_reconnects: Counter<u64>,
    events_published: Counter<u64>,
    events_delivered: Counter<u64>,
    events_dropped: Counter<u64>,
    connections_opened: Counter<u64>,
    registry_resets: Counter<u64>,
    connections_closed: Counter<u64>,
    publish_to_route_latency: Histogram<f64>,
    store_batch_size: Histogram<f64>,
    store_commit_duration: Histogram<f64>,
    store_errors: Counter<u64>,
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
                registry_resets: counter(
                    "sse.registry.resets",
                    "Times the Registry recovered from a panic by closing every stream",
                ),
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
                store_errors: counter(
                    "sse.store.errors",
                    "Event-store operations that failed, by operation and kind (timeout: past \
                     --store-timeout-ms, nothing stored; unconfirmed: a commit not confirmed in \
                     time; error: the database refused or could not be reached)",
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
                queue_depth: histogram(
                    "sse.stream.queue_depth",
                    "Frames waiting in each stream's queue, sampled every few seconds",
                    "{frame}",
                    &QUEUE_DEPTH_BUCKETS,
                ),
                rate_limited: counter("sse.rate_limited", "Requests refused with 429, by limit"),
                auth_failures: counter("sse.auth.failures", "Requests refused with 401, by reason"),
                jwks_refreshes: counter("sse.jwks.refreshes", "JWKS fetches, by outcome"),
                redis_reconnects: counter(
                    "sse.redis_bridge.reconnects",
                    "Times the Redis link was lost and established again",
                ),
                provider,
                registry,
                sampled,
                instance,
                delivery_lag,
            }),
        }
    }

    fn register_gauges(meter: &Meter, sampled: Arc<Sampled>, instance: KeyValue) {
        let source = sampled.clone();
        let labels = [instance.clone()];
        meter
            .i64_observable_gauge("sse.connections.active")
            .with_description("Open streams on this instance")
            .with_callback(move |observer| {
                observer.observe(source.active_connections.load(Ordering::Relaxed), &labels)
            })
            .build();
        let source = sampled.clone();
        let labels = AGE_BUCKETS.map(|bucket| [KeyValue::new("bucket", bucket)]);
        meter
            .i64_observable_gauge("sse.connections.by_age")
            .with_description(
                "Streams by age: stale (no write for the stale threshold), active (not stale), \
                 long_lived (open > 1 h), very_old (open > 6 h)",
            )
            .with_callback(move |observer| {
                for (count, labels) in source.by_age.iter().zip(&labels) {
                    observer.observe(count.load(Ordering::Relaxed), labels);
                }
            })
            .build();
        let source = sampled.clone();
        let labels = [instance];
        meter
            .i64_observable_gauge("sse.connections.redis")
            .with_description("This instance's stream count as recorded in Redis (cluster mode)")
            .with_callback(move |observer| {
                let value = source.redis_connections.load(Ordering::Relaxed);
                if value != ABSENT {
                    observer.observe(value, &labels);
                }
            })
            .build();
        let source = sampled.clone();
        meter
            .i64_observable_gauge("sse.redis_bridge.up")
            .with_description("1 while subscribed to Redis, 0 while not (cluster mode)")
            .with_callback(move |observer| {
                let value = source.redis_bridge_up.load(Ordering::Relaxed);
                if value != ABSENT {
                    observer.observe(value, &[]);
                }
            })
            .build();
        let source = sampled.clone();
        meter
            .f64_observable_gauge("sse.cleanup.error_rate")
            .with_description("Failed cleanup runs over all cleanup runs since start (0-1)")
            .with_callback(move |observer| {
                let bits = source.cleanup_error_rate_bits.load(Ordering::Relaxed);
                observer.observe(f64::from_bits(bits), &[]);
            })
            .build();
        let source = sampled.clone();
        meter
            .i64_observable_gauge("sse.cleanup.running")
            .with_description("1 while the periodic stale-connection cleanup is scheduled")
            .with_callback(move |observer| {
                observer.observe(source.cleanup_running.load(Ordering::Relaxed), &[])
            })
            .build();
        let source = sampled.clone();
        meter
            .f64_observable_gauge("sse.cleanup.last_run_timestamp")
            .with_description("Unix time of the last finished cleanup run (0: none yet)")
            .with_unit("s")
            .with_callback(move |observer| {
                let bits = source.cleanup_last_run_secs_bits.load(Ordering::Relaxed);
                observer.observe(f64::from_bits(bits), &[]);
            })
            .build();
        let source = sampled.clone();
        let labels = STORE_OPERATION_KINDS.map(|kind| [KeyValue::new("kind", kind)]);
        meter
            .i64_observable_gauge("sse.store.failing")
            .with_description(
                "Store writes or reads (kind): 0 the last one succeeded, 1 the last one failed \
                 within 30 s and none succeeded since (health alert store_failing), 2 it failed \
                 earlier and none was tried since (warning)",
            )
            .with_callback(move |observer| {
                for (state, labels) in source.store_failing.iter().zip(&labels) {
                    observer.observe(state.load(Ordering::Relaxed), labels);
                }
            })
            .build();
        let source = sampled.clone();
        meter
            .f64_observable_gauge("sse.store.oldest_operation")
            .with_description(
                "How long the oldest store operation in flight has been waiting (0: none); past \
                 --store-timeout-ms it is stalled",
            )
            .with_unit("s")
            .with_callback(move |observer| {
                let bits = source
                    .store_oldest_operation_secs_bits
                    .load(Ordering::Relaxed);
                observer.observe(f64::from_bits(bits), &[]);
            })
            .build();
        let source = sampled;
        meter
            .i64_observable_gauge("sse.health.status")
            .with_description("0 healthy, 1 degraded, 2 unhealthy (the /health rules)")
            .with_callback(move |observer| {
                observer.observe(source.health_status.load(Ordering::Relaxed), &[])
            })
            .build();
    }

    /// Open streams now, as the Registry last set it.
    pub fn active_connections(&self) -> usize {
        self.inner
            .sampled
            .active_connections
            .load(Ordering::Relaxed)
            .max(0) as usize
    }

    pub fn set_active_connections(&self, count: usize) {
        self.inner
            .sampled
            .active_connections
            .store(count as i64, Ordering::Relaxed);
    }

    /// The Registry's periodic sample: streams by age, and each stream's
    /// queue depth into the distribution.
    pub fn record_stream_sample(
        &self,
        ages: &AgeBuckets,
        queue_depths: impl Iterator<Item = usize>,
    ) {
        let by_age = &self.inner.sampled.by_age;
        for (slot, value) in
            by_age
                .iter()
                .zip([ages.stale, ages.active, ages.long_lived, ages.very_old])
        {
            slot.store(value as i64, Ordering::Relaxed);
        }
        for depth in queue_depths {
            self.inner.queue_depth.record(depth as f64, &[]);
        }
    }

    /// The RedisBridge's view: link state, and this instance's count in Redis.
    pub fn set_redis_bridge(&self, up: bool, own_redis_count: Option<usize>) {
        let sampled = &self.inner.sampled;
        sampled
            .redis_bridge_up
            .store(i64::from(up), Ordering::Relaxed);
        if let Some(count) = own_redis_count {
            sampled
                .redis_connections
                .store(count as i64, Ordering::Relaxed);
        }
    }

    pub fn record_redis_reconnect(&self) {
        self.inner.redis_reconnects.add(1, &[]);
    }

    pub fn set_cleanup_state(&self, running: bool, error_rate: f64, last_run_unix_secs: f64) {
        let sampled = &self.inner.sampled;
        sampled
            .cleanup_running
            .store(i64::from(running), Ordering::Relaxed);
        sampled
            .cleanup_error_rate_bits
            .store(error_rate.to_bits(), Ordering::Relaxed);
        sampled
            .cleanup_last_run_secs_bits
            .store(last_run_unix_secs.to_bits(), Ordering::Relaxed);
    }

    /// The store's health, as the HealthSampler last saw it: the
    /// `sse_store_failing` state of writes and reads, and the age of the
    /// oldest operation in flight.
    pub fn set_store_health(&self, writes: i64, reads: i64, oldest_operation_secs: f64) {
        let sampled = &self.inner.sampled;
        sampled.store_failing[0].store(writes, Ordering::Relaxed);
        sampled.store_failing[1].store(reads, Ordering::Relaxed);
        sampled
            .store_oldest_operation_secs_bits
            .store(oldest_operation_secs.to_bits(), Ordering::Relaxed);
    }

    /// 0 healthy, 1 degraded, 2 unhealthy.
    pub fn set_health_status(&self, status: i64) {
        self.inner
            .sampled
            .health_status
            .store(status, Ordering::Relaxed);
    }

    pub fn record_rate_limited(&self, limit: &'static str) {
        self.inner
            .rate_limited
            .add(1, &[KeyValue::new("limit", limit)]);
    }

    pub fn record_auth_failure(&self, reason: &'static str) {
        self.inner
            .auth_failures
            .add(1, &[KeyValue::new("reason", reason)]);
    }

    pub fn record_jwks_refresh(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.inner
            .jwks_refreshes
            .add(1, &[KeyValue::new("outcome", outcome)]);
    }

    /// The lock-free per-delivery lag histogram, for stream bodies.
    pub fn delivery_lag(&self) -> prometheus::Histogram {
        self.inner.delivery_lag.clone()
    }

    pub fn record_opened(&self) {
        self.inner.connections_opened.add(1, &[]);
    }

    pub fn record_registry_reset(&self) {
        self.inner.registry_resets.add(1, &[]);
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

    /// One failed store operation: `kind` is `timeout`, `unconfirmed` or
    /// `error`.
    pub fn record_store_error(&self, operation: &'static str, kind: &'static str) {
        self.inner.store_errors.add(
            1,
            &[
                KeyValue::new("operation", operation),
                KeyValue::new("kind", kind),
            ],
        );
    }

    pub fn record_cleanup(
        &self,
        result: &Result<crate::actors::janitor::CleanupReport, CleanupError>,
        seconds: f64,
    ) {
        let outcome = match result {
            Ok(report) if report.complete => "ok",
            _ => "error",
        };
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
