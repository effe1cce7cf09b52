//! What the Registry counts and shows: cumulative counters, the census of
//! open streams (age buckets, replaying, queued frames), and the listing
//! of `/sse/connections`.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::table::{ConnectionTable, Entry};
use crate::{
    domain::{EventType, EventTypeCatalog, ProjectAccess, ProjectId, UserId, rfc3339},
    stream::{CloseReason, ConnectionId},
};

/// Cumulative counters since start.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub total_connections: u64,
    pub events_published: u64,
    pub events_delivered: u64,
    pub events_dropped: u64,
    pub published_by_type: BTreeMap<EventType, u64>,
    pub closed_by_reason: HashMap<CloseReason, u64>,
}

impl Counters {
    pub fn record_close(&mut self, reason: CloseReason) {
        *self.closed_by_reason.entry(reason).or_default() += 1;
    }

    pub fn record_routed(&mut self, event_type: &EventType, delivered: u64) {
        self.events_published += 1;
        self.events_delivered += delivered;
        // Keyed by the shared type name: no allocation per routed event.
        *self
            .published_by_type
            .entry(event_type.clone())
            .or_default() += 1;
    }
}

/// The Registry's figures, as `/sse/stats` and `/sse/monitoring` show them.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RegistryStats {
    pub active_connections: usize,
    pub total_connections: u64,
    pub events_published: u64,
    pub events_delivered: u64,
    pub events_dropped: u64,
    pub connections_closed_slow: u64,
    pub events_by_type: BTreeMap<String, u64>,
    pub closed_by_reason: BTreeMap<&'static str, u64>,
    /// Connections by age: `stale` (no write for the threshold), `active`,
    /// `long_lived` (> 1 h), `very_old` (> 6 h).
    pub age_buckets: AgeBuckets,
    pub replaying_connections: usize,
    pub queued_frames: usize,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AgeBuckets {
    pub stale: usize,
    pub active: usize,
    pub long_lived: usize,
    pub very_old: usize,
}

/// A stream open longer than this is long-lived; six of them, very old.
pub(super) const HOUR_MS: i64 = 3_600_000;

impl RegistryStats {
    /// The counters, without a census: cheap whatever the number of streams.
    pub fn counters(counters: &Counters, active_connections: usize) -> Self {
        Self {
            active_connections,
            total_connections: counters.total_connections,
            events_published: counters.events_published,
            events_delivered: counters.events_delivered,
            events_dropped: counters.events_dropped,
            connections_closed_slow: counters
                .closed_by_reason
                .get(&CloseReason::Slow)
                .copied()
                .unwrap_or(0),
            events_by_type: counters
                .published_by_type
                .iter()
                .map(|(event_type, count)| (event_type.to_string(), *count))
                .collect(),
            closed_by_reason: CloseReason::ALL
                .iter()
                .map(|r| {
                    (
                        r.as_str(),
                        counters.closed_by_reason.get(r).copied().unwrap_or(0),
                    )
                })
                .collect(),
            ..Self::default()
        }
    }

    /// The counters and a census of every stream of `table` at `now_ms`:
    /// one pass over them.
    pub fn census<C: Clone>(
        counters: &Counters,
        table: &ConnectionTable<C>,
        stale_threshold_ms: i64,
        now_ms: i64,
    ) -> Self {
        let mut stats = Self::counters(counters, table.len());
        for entry in table.iter() {
            let age = now_ms - entry.stats.connected_at_ms;
            let buckets = &mut stats.age_buckets;
            if now_ms - entry.stats.last_write_ms() >= stale_threshold_ms {
                buckets.stale += 1;
            } else {
                buckets.active += 1;
            }
            buckets.long_lived += usize::from(age > HOUR_MS);
            buckets.very_old += usize::from(age > 6 * HOUR_MS);
            stats.replaying_connections += usize::from(entry.delivery.is_replaying());
            stats.queued_frames += entry.queued();
        }
        stats
    }

    /// These counters with the census of an earlier `census`.
    pub fn with_census_of(mut self, sampled: &Self) -> Self {
        self.age_buckets = sampled.age_buckets.clone();
        self.replaying_connections = sampled.replaying_connections;
        self.queued_frames = sampled.queued_frames;
        self
    }
}

/// One live stream, as listed by `/sse/connections`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionInfo {
    #[schema(value_type = String)]
    pub connection_id: ConnectionId,
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
    pub event_types: Vec<String>,
    #[schema(value_type = Option<String>)]
    pub project_id: Option<ProjectId>,
    pub task_id: Option<String>,
    /// RFC 3339.
    pub connected_at: String,
    /// RFC 3339: the last successful write to the client.
    pub last_activity_at: String,
    /// The client's resume point: the id of the last event written to it,
    /// or, before one, the one its `connected` frame or `Last-Event-ID`
    /// gave.
    pub last_event_id: Option<i64>,
    /// Frames waiting in this stream's queue.
    pub queued: usize,
    /// Publish→write lag of the last event written to this client, in ms.
    #[serde(default)]
    pub lag_ms: Option<i64>,
    pub events_sent: u64,
    pub instance_id: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionPage {
    pub connections: Vec<ConnectionInfo>,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    /// `instance`: this instance's streams; `cluster`: every instance's,
    /// gathered through Redis (the default when clustered).
    pub scope: &'static str,
    /// Whether these are all the streams there are: a cluster's listing is
    /// when every instance answered; one instance's listing in a cluster is
    /// not (`scope=local`, or Redis down: the others' are not in it).
    pub complete: bool,
    /// The instances that answered a cluster's listing; absent from one
    /// instance's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<String>>,
}

impl ConnectionPage {
    /// The streams `scope` covers, oldest first, `offset`/`limit` paged.
    pub fn list<C: Clone>(
        table: &ConnectionTable<C>,
        scope: &ProjectAccess,
        catalog: &EventTypeCatalog,
        instance_id: &str,
        offset: usize,
        limit: usize,
    ) -> Self {
        let mut entries: Vec<&Entry<C>> = table
            .iter()
            .filter(|entry| scope.covers(&entry.subscription))
            .collect();
        entries.sort_by_key(|e| (e.stats.connected_at_ms, e.id));
        let total = entries.len();
        let connections = entries
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|entry| ConnectionInfo {
                connection_id: entry.id,
                user_id: entry.subscription.viewer.user_id.clone(),
                event_types: entry.subscription.event_types.names(catalog.iter()),
                project_id: entry.subscription.project_id.clone(),
                task_id: entry.subscription.task_id.as_ref().map(ToString::to_string),
                connected_at: rfc3339(entry.stats.connected_at_ms),
                last_activity_at: rfc3339(entry.stats.last_write_ms()),
                last_event_id: entry.stats.last_event_id().map(|id| id.0),
                queued: entry.queued(),
                lag_ms: entry.stats.last_lag_ms(),
                events_sent: entry.stats.events_sent(),
                instance_id: instance_id.to_owned(),
            })
            .collect();
        Self {
            connections,
            total,
            limit,
            offset,
            scope: "instance",
            complete: true,
            instances: None,
        }
    }
}
