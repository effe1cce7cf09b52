//! The gauges: values the actors set (relaxed atomics) and the observable
//! instruments that read them at collection time.

use std::sync::{
    Arc,
    atomic::{AtomicI64, AtomicU64, Ordering},
};

use opentelemetry::{KeyValue, metrics::Meter};

use super::{ABSENT, Metrics, STORE_OPERATION_KINDS};
use crate::actors::registry::AgeBuckets;

/// Values sampled by the actors and read by the observable gauges at
/// collection time: relaxed atomics, so reporting costs nothing between
/// scrapes.
#[derive(Debug)]
pub(super) struct Sampled {
    active_connections: AtomicI64,
    /// `--max-connections`, once the Registry is built.
    max_connections: AtomicI64,
    stale: AtomicI64,
    long_lived: AtomicI64,
    very_old: AtomicI64,
    redis_connections: AtomicI64,
    redis_bridge_up: AtomicI64,
    cleanup_error_rate_bits: AtomicU64,
    cleanup_running: AtomicI64,
    cleanup_last_run_secs_bits: AtomicU64,
    health_status: AtomicI64,
    health_alerts: AtomicI64,
    /// The health sampler's last round trip to the store answered.
    store_up: AtomicI64,
    /// write, read: 0 no, 1 failing recently, 2 failing earlier.
    store_failing: [AtomicI64; 2],
    store_oldest_operation_secs_bits: AtomicU64,
    /// In use, free inside the allocator (Linux builds, jemalloc).
    heap_bytes: [AtomicI64; 2],
}

impl Default for Sampled {
    fn default() -> Self {
        Self {
            active_connections: AtomicI64::new(0),
            max_connections: AtomicI64::new(ABSENT),
            stale: AtomicI64::new(0),
            long_lived: AtomicI64::new(0),
            very_old: AtomicI64::new(0),
            redis_connections: AtomicI64::new(ABSENT),
            redis_bridge_up: AtomicI64::new(ABSENT),
            cleanup_error_rate_bits: AtomicU64::new(0f64.to_bits()),
            cleanup_running: AtomicI64::new(0),
            cleanup_last_run_secs_bits: AtomicU64::new(0f64.to_bits()),
            health_status: AtomicI64::new(0),
            health_alerts: AtomicI64::new(0),
            store_up: AtomicI64::new(1),
            store_failing: Default::default(),
            store_oldest_operation_secs_bits: AtomicU64::new(0f64.to_bits()),
            heap_bytes: [AtomicI64::new(ABSENT), AtomicI64::new(ABSENT)],
        }
    }
}

/// Which of [`Sampled`]'s age counts a gauge reads.
type AgeField = fn(&Sampled) -> &AtomicI64;

impl Metrics {
    pub(super) fn register_gauges(meter: &Meter, sampled: Arc<Sampled>, instance: KeyValue) {
        let source = sampled.clone();
        let max_labels = [instance.clone()];
        let labels = [instance.clone()];
        meter
            .i64_observable_gauge("sse.active_connections")
            .with_description("Open streams on this instance")
            .with_callback(move |observer| {
                observer.observe(source.active_connections.load(Ordering::Relaxed), &labels)
            })
            .build();
        let by_age: [(&str, &str, AgeField); 3] = [
            (
                "sse.stale_connections",
                "Streams with no successful write for the stale threshold (sampled once a second)",
                |s| &s.stale,
            ),
            (
                "sse.long_lived_connections",
                "Streams open for more than an hour",
                |s| &s.long_lived,
            ),
            (
                "sse.very_old_connections",
                "Streams open for more than six hours",
                |s| &s.very_old,
            ),
        ];
        for (name, description, field) in by_age {
            let source = sampled.clone();
            meter
                .i64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |observer| {
                    observer.observe(field(&source).load(Ordering::Relaxed), &[])
                })
                .build();
        }
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
            .i64_observable_gauge("sse.connections.max")
            .with_description(
                "The streams this instance admits at once (--max-connections): beyond it, new \
                 streams get 503 too_many_connections",
            )
            .with_callback(move |observer| {
                let value = source.max_connections.load(Ordering::Relaxed);
                if value != ABSENT {
                    observer.observe(value, &max_labels);
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
            .i64_observable_gauge("sse.heap")
            .with_description(
                "Heap memory by state: in_use by the broker, or free but kept by the allocator \
                 (Linux builds; free memory is handed back once it passes 8 MiB)",
            )
            .with_unit("By")
            .with_callback(move |observer| {
                for (state, value) in ["in_use", "free"].into_iter().zip(&source.heap_bytes) {
                    let value = value.load(Ordering::Relaxed);
                    if value != ABSENT {
                        observer.observe(value, &[KeyValue::new("state", state)]);
                    }
                }
            })
            .build();
        let source = sampled.clone();
        meter
            .f64_observable_gauge("sse.cleanup.error_rate")
            .with_description("Failed cleanup runs over all cleanup runs since start, in percent")
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
        // When this process started: a value that changes marks a restart,
        // so a crash loop shows even when every start scrapes fine.
        let started_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        meter
            .f64_observable_gauge("sse.start_time")
            .with_description("Unix time at which this broker process started")
            .with_unit("s")
            .with_callback(move |observer| observer.observe(started_at, &[]))
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
        let source = sampled.clone();
        meter
            .i64_observable_gauge("sse.store.up")
            .with_description(
                "1 while the event store answers the health round trip (once a second), 0 while \
                 it does not",
            )
            .with_callback(move |observer| {
                observer.observe(source.store_up.load(Ordering::Relaxed), &[])
            })
            .build();
        let source = sampled.clone();
        meter
            .i64_observable_gauge("sse.health.status")
            .with_description("0 healthy, 1 degraded, 2 unhealthy (the /health rules)")
            .with_callback(move |observer| {
                observer.observe(source.health_status.load(Ordering::Relaxed), &[])
            })
            .build();
        let source = sampled;
        meter
            .i64_observable_gauge("sse.health.alerts")
            .with_description("Health alerts raised now (the /health rules at severity high)")
            .with_callback(move |observer| {
                observer.observe(source.health_alerts.load(Ordering::Relaxed), &[])
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

    pub fn set_max_connections(&self, max: usize) {
        self.inner
            .sampled
            .max_connections
            .store(i64::try_from(max).unwrap_or(i64::MAX), Ordering::Relaxed);
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
        let sampled = &self.inner.sampled;
        sampled.stale.store(ages.stale as i64, Ordering::Relaxed);
        sampled
            .long_lived
            .store(ages.long_lived as i64, Ordering::Relaxed);
        sampled
            .very_old
            .store(ages.very_old as i64, Ordering::Relaxed);
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
        // While the link is down the count in Redis cannot be read: the
        // series goes absent rather than repeat the last value read.
        let recorded = match own_redis_count {
            _ if !up => Some(ABSENT),
            Some(count) => Some(count as i64),
            None => None,
        };
        if let Some(recorded) = recorded {
            sampled.redis_connections.store(recorded, Ordering::Relaxed);
        }
    }

    pub fn record_redis_reconnect(&self) {
        self.inner.redis_reconnects.add(1, &[]);
    }

    pub fn record_foreign_message(&self) {
        self.inner.redis_foreign_messages.add(1, &[]);
    }

    pub fn record_instance_id_clash(&self) {
        self.inner.redis_instance_id_clashes.add(1, &[]);
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

    /// Whether the health sampler's last round trip to the store answered.
    pub fn set_store_up(&self, up: bool) {
        self.inner
            .sampled
            .store_up
            .store(i64::from(up), Ordering::Relaxed);
    }

    /// 0 healthy, 1 degraded, 2 unhealthy, and how many alerts say so.
    pub fn set_health_status(&self, status: i64, alerts: usize) {
        let sampled = &self.inner.sampled;
        sampled.health_status.store(status, Ordering::Relaxed);
        sampled
            .health_alerts
            .store(alerts as i64, Ordering::Relaxed);
    }

    /// What the allocator holds, as the HeapTrimmer last read it.
    pub fn set_heap_usage(&self, in_use: usize, free: usize) {
        let sampled = &self.inner.sampled;
        for (gauge, bytes) in sampled.heap_bytes.iter().zip([in_use, free]) {
            gauge.store(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
    }
}
