//! The monitoring answers as typed documents: `/health`, `/sse/stats` and
//! `/sse/monitoring`, each built from a [`Snapshot`] and described to
//! `/openapi.json` by its real schema.

mod figures;
mod health;

use serde::Serialize;
use utoipa::ToSchema;

pub use figures::{
    CleanupStatsView, ConnectionStats, LagQuantiles, MonitoringDocument, PerformanceMetrics,
    StatsDocument,
};
pub use health::{CleanupCheck, HealthChecks, HealthDocument, RedisCheck, RegistryCheck};

use super::Snapshot;
use crate::{
    actors::redis_bridge::{InstancePresence, LinkState},
    config::{HealthThresholds, Settings},
    store::ClassReport,
};

/// What the documents need beyond the snapshot.
pub struct DocumentContext<'a> {
    pub instance_id: &'a str,
    pub max_connections: usize,
    pub thresholds: &'a HealthThresholds,
    pub store_backend: &'static str,
    pub delivery_lag: &'a prometheus::Histogram,
    pub configuration: &'a Settings,
}

// ---------------------------------------------------------------------------
// Shared parts

/// The event store's check: `checks.store` of `/health`, `store_stats` of
/// `/sse/monitoring`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreCheck {
    /// `ok`, `failing` (a recent operation failed), `stalled` (one waits
    /// past the store timeout) or `unavailable` (no round trip).
    pub status: &'static str,
    /// `sqlite` or `postgresql`.
    pub backend: &'static str,
    pub timeout_ms: u64,
    pub writes: StoreClassCheck,
    pub reads: StoreClassCheck,
    pub in_flight: usize,
    pub oldest_in_flight: Option<StoreOperationView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreClassCheck {
    /// `ok` or `failing`.
    pub status: &'static str,
    pub last_ok_secs_ago: Option<f64>,
    pub last_failure: Option<StoreFailureView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreFailureView {
    pub operation: &'static str,
    /// `timeout`, `unconfirmed` or `error`.
    pub kind: &'static str,
    pub secs_ago: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreOperationView {
    pub operation: &'static str,
    pub secs: f64,
}

impl StoreCheck {
    pub fn of(snapshot: &Snapshot, backend: &'static str) -> Self {
        let store = &snapshot.store;
        let status = if !snapshot.store_ok {
            "unavailable"
        } else if store.stalled().is_some() {
            "stalled"
        } else if store.writes.failing.is_some() || store.reads.failing.is_some() {
            "failing"
        } else {
            "ok"
        };
        let class = |class: &ClassReport| StoreClassCheck {
            status: if class.failing.is_some() {
                "failing"
            } else {
                "ok"
            },
            last_ok_secs_ago: class.last_ok_ago.map(|ago| ago.as_secs_f64()),
            last_failure: class.failing.as_ref().map(|f| StoreFailureView {
                operation: f.operation,
                kind: f.kind.as_str(),
                secs_ago: f.ago.as_secs_f64(),
            }),
        };
        Self {
            status,
            backend,
            timeout_ms: store.timeout.as_millis() as u64,
            writes: class(&store.writes),
            reads: class(&store.reads),
            in_flight: store.in_flight,
            oldest_in_flight: store.oldest_in_flight.as_ref().map(|o| StoreOperationView {
                operation: o.operation,
                secs: o.elapsed.as_secs_f64(),
            }),
        }
    }
}

/// Cluster-wide totals from every instance's Redis entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClusterTotals {
    pub instances: Vec<InstancePresence>,
    pub instance_count: usize,
    pub total_active_connections: usize,
    /// The link to Redis: `connecting`, `up` or `down`.
    pub redis: LinkState,
}

impl ClusterTotals {
    pub(super) fn of(snapshot: &Snapshot) -> Option<Self> {
        let bridge = snapshot.bridge.as_ref()?;
        Some(Self {
            instances: bridge.instances.clone(),
            instance_count: bridge.instances.len(),
            total_active_connections: bridge.instances.iter().map(|i| i.active_connections).sum(),
            redis: bridge.state,
        })
    }
}
