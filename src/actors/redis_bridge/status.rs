//! What the bridge tells the rest of the broker about the cluster: the
//! link's state and every instance's presence.

use serde::{Deserialize, Serialize};

/// The state of the link to Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    #[default]
    Connecting,
    Up,
    Down,
}

/// One instance's entry in Redis.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstancePresence {
    pub instance_id: String,
    pub active_connections: usize,
    pub updated_at_ms: i64,
}

/// What the bridge knows, for `/health`, `/sse/stats` and monitoring.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BridgeStatus {
    pub state: LinkState,
    pub last_error: Option<String>,
    pub reconnects: u64,
    pub last_routed_id: i64,
    pub repairs: u64,
    /// Every live instance's entry, this one included.
    pub instances: Vec<InstancePresence>,
    /// This instance's count as Redis held it before the latest refresh;
    /// `None` when there is nothing to compare it with (see
    /// `own_written_count`).
    pub own_redis_count: Option<usize>,
    /// The count this instance wrote in the refresh before that one: what
    /// `own_redis_count` should be. `None` before two refreshes in a row on
    /// one unbroken link.
    pub own_written_count: Option<usize>,
    /// Refreshes in a row at which this instance's record did not hold what
    /// it had written: one alone is a flush or a lost key, rewritten at
    /// once; two in a row is a record that does not stick.
    pub own_record_misses: u32,
    /// Redis answers but refuses this instance's presence writes (`OOM`,
    /// `READONLY`, …), with its words: events still flow, the cluster's
    /// totals and the record's check are stale.
    pub presence_refused: Option<String>,
    /// The latest message of another deployment seen on this cluster's
    /// channels (see `strangers`).
    pub foreign: Option<super::ForeignSighting>,
    /// When another process last wrote this instance's presence record
    /// (two instances with one `--instance-id`; see `strangers`).
    #[serde(skip)]
    pub id_clash_at: Option<std::time::Instant>,
}
