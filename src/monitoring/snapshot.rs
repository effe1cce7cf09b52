//! `Snapshot`: the instance's state at one moment, as every monitoring
//! answer reads it, and [`Sources`], where it comes from.
//!
//! Nothing here waits on an actor: the Janitor and the RedisBridge publish
//! their figures through `watch` channels as they change, the store keeps
//! the outcomes of its own operations in memory, the active-connection
//! count is an atomic, and the census of every stream (ages, replays,
//! queued frames), the one figure that costs a pass over all streams, is
//! taken once a second by the [`super::HealthSampler`] and published the
//! same way. So `/health` answers in the same time during a cleanup run,
//! with a stalled store, and with 10,000 streams open.

use std::{sync::Arc, time::Instant};

use tokio::sync::watch;

use crate::{
    actors::{
        janitor::CleanupStats,
        redis_bridge::{BridgeStatus, LinkState},
        registry::RegistryStats,
    },
    auth::JwksKeys,
    store::{EventStore, StoreHealthReport},
    telemetry::Metrics,
};

/// What the sampler measured last.
#[derive(Debug, Clone, Default)]
pub struct Census {
    /// The Registry's counters and its census of every stream.
    pub registry: RegistryStats,
    /// The store answered a round trip (`SELECT 1`).
    pub store_ok: bool,
}

/// The instance's state at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub registry: RegistryStats,
    pub cleanup: CleanupStats,
    /// The store answered the sampler's last round trip.
    pub store_ok: bool,
    /// What the store's real operations said lately: a round trip answers
    /// while every write fails or waits on a lock.
    pub store: StoreHealthReport,
    pub uptime_secs: u64,
    /// `None` unless clustered.
    pub bridge: Option<BridgeStatus>,
    /// `None` unless signing keys come from a JWKS endpoint.
    pub jwks: Option<JwksState>,
}

/// The signing keys of a JWKS endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksState {
    /// Keys in the set last fetched; `None` before a fetch has succeeded
    /// (tokens that need them get 503 `auth_unavailable`).
    pub keys: Option<usize>,
}

/// Where a [`Snapshot`] comes from. Cheap to clone.
#[derive(Clone)]
pub struct Sources {
    pub census: watch::Receiver<Arc<Census>>,
    pub cleanup: watch::Receiver<CleanupStats>,
    pub bridge: Option<watch::Receiver<BridgeStatus>>,
    pub jwks: Option<JwksKeys>,
    pub store: EventStore,
    pub metrics: Metrics,
    pub started_at: Instant,
}

impl Sources {
    /// The state now: the live figures, and the latest census.
    pub fn snapshot(&self) -> Snapshot {
        let census = self.census.borrow().clone();
        let mut registry = census.registry.clone();
        // The count itself is live; the census around it is at most a
        // sampling period old.
        registry.active_connections = self.metrics.active_connections();
        Snapshot {
            registry,
            cleanup: self.cleanup.borrow().clone(),
            store_ok: census.store_ok,
            store: self.store.health(),
            uptime_secs: self.started_at.elapsed().as_secs(),
            bridge: self.bridge.as_ref().map(|status| status.borrow().clone()),
            jwks: self.jwks.as_ref().map(|jwks| JwksState {
                keys: jwks.current().map(|set| set.len()),
            }),
        }
    }
}

impl Snapshot {
    /// Failed runs over all runs since start, in percent.
    pub fn cleanup_error_rate(&self) -> f64 {
        self.cleanup.error_rate()
    }

    /// Streams the cleanup failed to close over those it tried, in percent.
    pub fn connection_failure_rate(&self) -> f64 {
        self.cleanup.connection_failure_rate()
    }

    /// Whether the Redis link is up (always, without Redis).
    pub fn redis_up(&self) -> bool {
        self.bridge
            .as_ref()
            .is_none_or(|bridge| bridge.state == LinkState::Up)
    }
    /// The count this instance last wrote to Redis against the count Redis
    /// held for it when it next looked: like with like. (The live count
    /// against Redis would measure the presence period instead: 100 streams
    /// opened at once are not in Redis for up to two refreshes.) They differ
    /// when the write did not stick: the key was evicted or expired, or
    /// another instance writes under this one's id. Right after a Redis
    /// outage there is nothing to compare (see `RedisBridge`).
    /// The message and the gap when they differ by more than `tolerance`
    /// at two refreshes in a row: once alone is a flush or a lost key,
    /// which the refresh rewrote (every instance sees one `FLUSHALL` at
    /// once, and a load balancer must not take them all out for it).
    pub fn connection_mismatch(&self, tolerance: usize) -> Option<(String, usize)> {
        let bridge = self.bridge.as_ref()?;
        if bridge.own_record_misses < 2 {
            return None;
        }
        let in_redis = bridge.own_redis_count?;
        let written = bridge.own_written_count?;
        let tolerance = tolerance.max(written / 10);
        let gap = written.abs_diff(in_redis);
        (gap > tolerance).then(|| {
            (
                format!(
                    "Connection count mismatch: this instance wrote {written} active connections \
                     to Redis, {in_redis} recorded there"
                ),
                gap,
            )
        })
    }
}
