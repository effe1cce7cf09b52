//! `Registry`: the only owner of the set of live connections.
//!
//! It routes each event through the [`RoutingIndex`] to the streams that
//! want it, encodes the frame once and `try_send`s the same bytes into each
//! stream's bounded queue. It never awaits a consumer: a full queue closes
//! that stream (`CloseReason::Slow`) and the client resumes by id.
//! During a resume the stream's live events wait in a bounded hand-off
//! buffer until its replay has caught up (see `connection::ReplayJob`).

mod routing_index;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fmt,
    sync::Arc,
};

use actix::{Actor, Addr, Context, Handler, Message, MessageResult};
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

pub use routing_index::RoutingIndex;

use super::connection::{Close, CloseReason, Connection, ConnectionStats, OutboundFrame};
use crate::{
    domain::{
        EventId, EventType, EventTypeCatalog, ProjectAccess, ProjectId, StoredEvent, Subscription,
        SubscriptionView, TypeFilter, UserId, now_ms, sse_frame,
    },
    telemetry::Metrics,
};

/// A stream's id: random, so ids from several instances never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub uuid::Uuid);

impl ConnectionId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    pub fn parse(raw: &str) -> Option<Self> {
        uuid::Uuid::parse_str(raw).ok().map(Self)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl Serialize for ConnectionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How a stream receives live events right now.
enum Delivery {
    Live,
    /// Resuming: live frames wait here until replay has caught up.
    Replaying {
        buffer: VecDeque<OutboundFrame>,
        overflowed: bool,
    },
}

struct Entry {
    queue: mpsc::Sender<OutboundFrame>,
    connection: Addr<Connection>,
    stats: Arc<ConnectionStats>,
    subscription: Subscription,
    /// The authenticated user, counted in `streams_per_user`.
    owner: Option<UserId>,
    delivery: Delivery,
    /// Set when a resume hands off to live delivery: every stored event up
    /// to this id is already in the queue (replayed from the store). The
    /// Persister commits before it routes, so a replay can read an event
    /// whose `Route` reaches the Registry only after the hand-off; that
    /// late `Route` must not queue it a second time.
    replayed_through: Option<EventId>,
}

pub struct Registry {
    connections: HashMap<ConnectionId, Entry>,
    index: RoutingIndex,
    catalog: EventTypeCatalog,
    max_connections: usize,
    queue_capacity: usize,
    instance_id: String,
    shutting_down: bool,
    counters: Counters,
    metrics: Metrics,
    /// Reused between routes so routing allocates nothing per event.
    scratch: Vec<ConnectionId>,
    /// Simultaneous streams per user; 0 = no cap.
    max_streams_per_user: usize,
    streams_per_user: HashMap<UserId, usize>,
    /// The highest stored id routed so far: the drain waits for it to reach
    /// the last stored event before saying goodbye.
    routed_through: EventId,
}

#[derive(Debug, Default, Clone)]
struct Counters {
    total_connections: u64,
    events_published: u64,
    events_delivered: u64,
    events_dropped: u64,
    published_by_type: BTreeMap<EventType, u64>,
    closed_by_reason: HashMap<CloseReason, u64>,
}

impl Registry {
    pub fn new(
        catalog: EventTypeCatalog,
        max_connections: usize,
        queue_capacity: usize,
        instance_id: String,
        metrics: Metrics,
    ) -> Self {
        Self {
            connections: HashMap::new(),
            index: RoutingIndex::default(),
            catalog,
            max_connections,
            queue_capacity,
            instance_id,
            shutting_down: false,
            counters: Counters::default(),
            metrics,
            scratch: Vec::new(),
            max_streams_per_user: 0,
            streams_per_user: HashMap::new(),
            routed_through: EventId(0),
        }
    }

    /// Caps simultaneous streams per user (0 = no cap).
    pub fn with_max_streams_per_user(mut self, max: usize) -> Self {
        self.max_streams_per_user = max;
        self
    }

    /// Streams by age, how many are replaying, and the frames queued.
    fn census(&self, stale_threshold_ms: i64) -> (AgeBuckets, usize, usize) {
        let now = now_ms();
        let mut age_buckets = AgeBuckets::default();
        let mut replaying = 0;
        let mut queued = 0;
        for entry in self.connections.values() {
            let age = now - entry.stats.connected_at_ms;
            if now - entry.stats.last_write_ms() >= stale_threshold_ms {
                age_buckets.stale += 1;
            } else {
                age_buckets.active += 1;
            }
            if age > 3_600_000 {
                age_buckets.long_lived += 1;
            }
            if age > 6 * 3_600_000 {
                age_buckets.very_old += 1;
            }
            if matches!(entry.delivery, Delivery::Replaying { .. }) {
                replaying += 1;
            }
            queued += entry.queue.max_capacity() - entry.queue.capacity();
        }
        (age_buckets, replaying, queued)
    }

    fn route_one(&mut self, event: &StoredEvent) {
        // One span per routed event, child of the publisher's span, only
        // when spans are exported: nothing is built otherwise.
        let span = match &event.trace_context {
            Some(parent) if crate::telemetry::traces_exported() => {
                let span = tracing::info_span!(
                    "deliver",
                    sse.event.id = event.id.map(|id| id.0),
                    sse.event.type = %event.event_type,
                    sse.instance.id = %self.instance_id,
                    sse.deliveries = tracing::field::Empty,
                );
                crate::telemetry::adopt_parent(&span, parent);
                Some(span)
            }
            _ => None,
        };
        let frame = OutboundFrame::event(event, sse_frame::encode_event(event));
        let mut candidates = std::mem::take(&mut self.scratch);
        candidates.clear();
        self.index.candidates(event, &mut candidates);
        let mut delivered = 0u64;
        let mut slow = Vec::new();
        for id in &candidates {
            let Some(entry) = self.connections.get_mut(id) else {
                continue;
            };
            if !entry.subscription.matches(event) {
                continue;
            }
            if event.id.is_some() && event.id <= entry.replayed_through {
                continue;
            }
            match &mut entry.delivery {
                Delivery::Live => match entry.queue.try_send(frame.clone()) {
                    Ok(()) => {
                        delivered += 1;
                        // A task stream ends with its task.
                        if entry.subscription.task_id.is_some() && event.ends_task() {
                            entry.connection.do_send(Close {
                                reason: CloseReason::TaskFinished,
                            });
                        }
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => slow.push(*id),
                    // The body is gone; the actor's own watcher deregisters it.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                },
                Delivery::Replaying { buffer, overflowed } => {
                    if buffer.len() >= self.queue_capacity {
                        buffer.clear();
                        *overflowed = true;
                    } else if !*overflowed {
                        buffer.push_back(frame.clone());
                    }
                }
            }
        }
        self.scratch = candidates;
        self.counters.events_published += 1;
        self.counters.events_delivered += delivered;
        // Keyed by the shared type name: no allocation per routed event.
        *self
            .counters
            .published_by_type
            .entry(event.event_type.clone())
            .or_default() += 1;
        self.metrics
            .record_routed(event, delivered, slow.len() as u64);
        if let Some(span) = span {
            span.record("sse.deliveries", delivered);
        }
        for id in slow {
            self.close_slow(id);
        }
    }

    fn close_slow(&mut self, id: ConnectionId) {
        if let Some(entry) = self.remove(id) {
            self.counters.events_dropped += 1;
            *self
                .counters
                .closed_by_reason
                .entry(CloseReason::Slow)
                .or_default() += 1;
            tracing::info!(connection_id = %id, reason = "slow", queued = self.queue_capacity, "closing slow stream");
            self.metrics.record_closed(CloseReason::Slow);
            entry.connection.do_send(Close {
                reason: CloseReason::Slow,
            });
        }
    }

    fn remove(&mut self, id: ConnectionId) -> Option<Entry> {
        let entry = self.connections.remove(&id)?;
        self.index.remove(id, &entry.subscription);
        if let Some(user) = &entry.owner
            && let Some(count) = self.streams_per_user.get_mut(user)
        {
            *count -= 1;
            if *count == 0 {
                self.streams_per_user.remove(user);
            }
        }
        self.metrics.set_active_connections(self.connections.len());
        Some(entry)
    }

    fn view(&self, subscription: &Subscription) -> SubscriptionView {
        SubscriptionView {
            event_types: subscription.event_types.names(self.catalog.iter()),
            project_id: subscription.project_id.clone(),
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

/// Why a stream could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("the broker is at its connection limit")]
    Full,
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("this user has too many open streams")]
    UserStreamLimit,
}

/// Admit a new stream. Sent by the HTTP edge before the response starts, so
/// a full broker answers 503 instead of an empty stream.
#[derive(Message)]
#[rtype(result = "Result<(), RegisterError>")]
pub struct Register {
    pub id: ConnectionId,
    pub queue: mpsc::Sender<OutboundFrame>,
    pub connection: Addr<Connection>,
    pub stats: Arc<ConnectionStats>,
    pub subscription: Subscription,
    /// The authenticated user, for the per-user stream cap.
    pub owner: Option<UserId>,
    /// Buffer live events until the stream's replay catches up.
    pub replaying: bool,
}

impl Handler<Register> for Registry {
    type Result = Result<(), RegisterError>;

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) -> Self::Result {
        if self.shutting_down {
            return Err(RegisterError::ShuttingDown);
        }
        if self.connections.len() >= self.max_connections {
            return Err(RegisterError::Full);
        }
        if let Some(user) = &msg.owner {
            let open = self.streams_per_user.entry(user.clone()).or_default();
            if self.max_streams_per_user > 0 && *open >= self.max_streams_per_user {
                self.metrics
                    .record_rate_limited(crate::limits::Limit::StreamsPerUserCap.as_str());
                return Err(RegisterError::UserStreamLimit);
            }
            *open += 1;
        }
        self.index.insert(msg.id, &msg.subscription);
        self.connections.insert(
            msg.id,
            Entry {
                queue: msg.queue,
                connection: msg.connection,
                stats: msg.stats,
                subscription: msg.subscription,
                owner: msg.owner,
                delivery: if msg.replaying {
                    Delivery::Replaying {
                        buffer: VecDeque::new(),
                        overflowed: false,
                    }
                } else {
                    Delivery::Live
                },
                replayed_through: None,
            },
        );
        self.counters.total_connections += 1;
        self.metrics.record_opened();
        self.metrics.set_active_connections(self.connections.len());
        Ok(())
    }
}

/// A stream's actor stopped, for `reason`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub id: ConnectionId,
    pub reason: CloseReason,
}

impl Handler<Unregister> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) {
        // Slow streams were already removed (and counted) when detected.
        if let Some(entry) = self.remove(msg.id) {
            *self
                .counters
                .closed_by_reason
                .entry(msg.reason)
                .or_default() += 1;
            self.metrics.record_closed(msg.reason);
            tracing::info!(
                connection_id = %msg.id,
                reason = msg.reason.as_str(),
                events_sent = entry.stats.events_sent(),
                duration_secs = (now_ms() - entry.stats.connected_at_ms) as f64 / 1000.0,
                "stream closed"
            );
        }
    }
}

/// Deliver events, in id order, to every matching stream.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Route {
    pub events: Vec<StoredEvent>,
    /// The last id committed before these events (`None` when none of them
    /// is stored); lets a cluster receiver detect a batch it missed.
    pub previous_id: Option<EventId>,
}

impl Handler<Route> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Route, _: &mut Context<Self>) {
        for event in &msg.events {
            self.route_one(event);
        }
        if let Some(highest) = msg.events.iter().filter_map(|e| e.id).max() {
            self.routed_through = self.routed_through.max(highest);
        }
    }
}

/// The highest stored id routed to the streams so far.
#[derive(Debug, Message)]
#[rtype(result = "EventId")]
pub struct RoutedThrough;

impl Handler<RoutedThrough> for Registry {
    type Result = MessageResult<RoutedThrough>;

    fn handle(&mut self, _: RoutedThrough, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.routed_through)
    }
}

/// What the Registry answers when a resuming stream's replay caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOff {
    /// Buffered events after the replay were queued; the stream is live.
    Live,
    /// The buffer overflowed or did not fit the queue: replay again from
    /// the store after `queued_through`, the last id already queued.
    Overflowed { queued_through: EventId },
    /// The stream is no longer registered.
    Gone,
}

/// A resuming stream has replayed everything up to `last_replayed`.
#[derive(Debug, Message)]
#[rtype(result = "HandOff")]
pub struct ReplayCaughtUp {
    pub id: ConnectionId,
    pub last_replayed: EventId,
}

impl Handler<ReplayCaughtUp> for Registry {
    type Result = MessageResult<ReplayCaughtUp>;

    fn handle(&mut self, msg: ReplayCaughtUp, _: &mut Context<Self>) -> Self::Result {
        let Some(entry) = self.connections.get_mut(&msg.id) else {
            return MessageResult(HandOff::Gone);
        };
        let Delivery::Replaying { buffer, overflowed } = &mut entry.delivery else {
            return MessageResult(HandOff::Live);
        };
        let mut queued_through = msg.last_replayed;
        if *overflowed {
            buffer.clear();
            *overflowed = false;
            return MessageResult(HandOff::Overflowed { queued_through });
        }
        // Already replayed from the store: skip, never send twice.
        buffer.retain(|f| f.event_id.is_none_or(|id| id > msg.last_replayed));
        let mut task_ended = false;
        while let Some(frame) = buffer.pop_front() {
            let id = frame.event_id;
            task_ended |= frame.ends_task;
            match entry.queue.try_send(frame) {
                Ok(()) => queued_through = id.unwrap_or(queued_through),
                // The replay filled the queue: the rest is in the store.
                Err(mpsc::error::TrySendError::Full(_)) => {
                    buffer.clear();
                    return MessageResult(HandOff::Overflowed { queued_through });
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return MessageResult(HandOff::Gone),
            }
        }
        entry.delivery = Delivery::Live;
        entry.replayed_through = Some(queued_through);
        if task_ended && entry.subscription.task_id.is_some() {
            entry.connection.do_send(Close {
                reason: CloseReason::TaskFinished,
            });
        }
        MessageResult(HandOff::Live)
    }
}

/// Why a subscription change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpdateSubscriptionError {
    #[error("no live connection with this id")]
    UnknownConnection,
    #[error("the connection belongs to another user")]
    NotOwner,
}

/// Change a live stream's filter; the stream receives `subscription_updated`.
#[derive(Debug, Message)]
#[rtype(result = "Result<SubscriptionView, UpdateSubscriptionError>")]
pub struct UpdateSubscription {
    pub id: ConnectionId,
    pub event_types: TypeFilter,
    pub project_id: Option<ProjectId>,
    /// The requester; `None` when authentication is off.
    pub requester: Option<UserId>,
}

impl Handler<UpdateSubscription> for Registry {
    type Result = Result<SubscriptionView, UpdateSubscriptionError>;

    fn handle(&mut self, msg: UpdateSubscription, _: &mut Context<Self>) -> Self::Result {
        let entry = self
            .connections
            .get(&msg.id)
            .ok_or(UpdateSubscriptionError::UnknownConnection)?;
        if msg.requester.is_some() && msg.requester != entry.subscription.viewer.user_id {
            return Err(UpdateSubscriptionError::NotOwner);
        }
        let old = entry.subscription.clone();
        let mut new = old.clone();
        new.event_types = msg.event_types;
        new.project_id = msg.project_id;
        self.index.remove(msg.id, &old);
        self.index.insert(msg.id, &new);
        let view = self.view(&new);
        let entry = self.connections.get_mut(&msg.id).expect("checked above");
        entry.subscription = new;
        let frame = sse_frame::encode_control(
            "subscription_updated",
            &json!({ "connection_id": msg.id, "event_types": view.event_types, "project_id": view.project_id }),
        );
        // Through the same queue as events, so it precedes every event of
        // the new filter.
        let frame = OutboundFrame::control(frame);
        let slow = match &mut entry.delivery {
            Delivery::Replaying { buffer, .. } => {
                buffer.push_back(frame);
                false
            }
            Delivery::Live => matches!(
                entry.queue.try_send(frame),
                Err(mpsc::error::TrySendError::Full(_))
            ),
        };
        if slow {
            self.close_slow(msg.id);
        }
        Ok(view)
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
    pub last_event_id: Option<i64>,
    /// Frames waiting in this stream's queue.
    pub queued: usize,
    /// Publish→write lag of the last event written to this client, in ms.
    #[serde(default)]
    pub lag_ms: Option<i64>,
    pub events_sent: u64,
    pub instance_id: String,
}

/// A page of live streams, oldest first.
#[derive(Debug, Message)]
#[rtype(result = "ConnectionPage")]
pub struct ListConnections {
    pub limit: usize,
    pub offset: usize,
    /// The operator's projects: only the streams they cover are listed.
    pub scope: ProjectAccess,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionPage {
    pub connections: Vec<ConnectionInfo>,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
}

impl Handler<ListConnections> for Registry {
    type Result = MessageResult<ListConnections>;

    fn handle(&mut self, msg: ListConnections, _: &mut Context<Self>) -> Self::Result {
        let mut entries: Vec<(&ConnectionId, &Entry)> = self
            .connections
            .iter()
            .filter(|(_, entry)| msg.scope.covers(&entry.subscription))
            .collect();
        entries.sort_by_key(|(id, e)| (e.stats.connected_at_ms, **id));
        let total = entries.len();
        let connections = entries
            .into_iter()
            .skip(msg.offset)
            .take(msg.limit)
            .map(|(id, entry)| ConnectionInfo {
                connection_id: *id,
                user_id: entry.subscription.viewer.user_id.clone(),
                event_types: entry.subscription.event_types.names(self.catalog.iter()),
                project_id: entry.subscription.project_id.clone(),
                task_id: entry.subscription.task_id.as_ref().map(ToString::to_string),
                connected_at: rfc3339(entry.stats.connected_at_ms),
                last_activity_at: rfc3339(entry.stats.last_write_ms()),
                last_event_id: entry.stats.last_event_id().map(|id| id.0),
                queued: entry.queue.max_capacity() - entry.queue.capacity(),
                lag_ms: entry.stats.last_lag_ms(),
                events_sent: entry.stats.events_sent(),
                instance_id: self.instance_id.clone(),
            })
            .collect();
        MessageResult(ConnectionPage {
            connections,
            total,
            limit: msg.limit,
            offset: msg.offset,
        })
    }
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Counters for `/sse/stats` and `/sse/monitoring`.
#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Message)]
#[rtype(result = "RegistryStats")]
pub struct GetStats {
    pub stale_threshold_ms: i64,
    /// Also write the age gauges and one queue-depth sample per stream into
    /// the metrics: set by the periodic HealthSampler only, so the
    /// distribution is sampled at a steady rate whoever else polls.
    pub record_gauges: bool,
}

impl Handler<GetStats> for Registry {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, msg: GetStats, _: &mut Context<Self>) -> Self::Result {
        let (age_buckets, replaying, queued) = self.census(msg.stale_threshold_ms);
        if msg.record_gauges {
            self.metrics.record_stream_sample(
                &age_buckets,
                self.connections
                    .values()
                    .map(|e| e.queue.max_capacity() - e.queue.capacity()),
            );
        }
        let counters = &self.counters;
        MessageResult(RegistryStats {
            active_connections: self.connections.len(),
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
            age_buckets,
            replaying_connections: replaying,
            queued_frames: queued,
        })
    }
}

/// Drop one stream at once, as a network failure would: the client
/// reconnects and resumes. Answers whether it was open here.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Disconnect {
    pub id: ConnectionId,
    /// The operator's projects: a stream they do not cover is "not here".
    pub scope: ProjectAccess,
}

impl Handler<Disconnect> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) -> bool {
        let Some(entry) = self
            .connections
            .get(&msg.id)
            .filter(|entry| msg.scope.covers(&entry.subscription))
        else {
            return false;
        };
        tracing::info!(connection_id = %msg.id, "operator disconnected a stream");
        entry.connection.do_send(Close {
            reason: CloseReason::Disconnected,
        });
        true
    }
}

/// How many streams are open, cheaply.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct ActiveConnections;

impl Handler<ActiveConnections> for Registry {
    type Result = usize;

    fn handle(&mut self, _: ActiveConnections, _: &mut Context<Self>) -> usize {
        self.connections.len()
    }
}

/// A stream with no successful write for the threshold.
#[derive(Debug, Clone)]
pub struct StaleConnection {
    pub id: ConnectionId,
    pub connection: Addr<Connection>,
    pub idle_ms: i64,
}

/// Streams whose last successful write is older than the threshold, most
/// idle first.
#[derive(Debug, Message)]
#[rtype(result = "Vec<StaleConnection>")]
pub struct FindStale {
    pub threshold_ms: i64,
}

impl Handler<FindStale> for Registry {
    type Result = MessageResult<FindStale>;

    fn handle(&mut self, msg: FindStale, _: &mut Context<Self>) -> Self::Result {
        let now = now_ms();
        let mut stale: Vec<StaleConnection> = self
            .connections
            .iter()
            .filter_map(|(id, entry)| {
                let idle_ms = now - entry.stats.last_write_ms();
                (idle_ms >= msg.threshold_ms).then(|| StaleConnection {
                    id: *id,
                    connection: entry.connection.clone(),
                    idle_ms,
                })
            })
            .collect();
        stale.sort_by_key(|s| std::cmp::Reverse(s.idle_ms));
        MessageResult(stale)
    }
}

/// Stop admitting streams and close every open one with `event: shutdown`.
/// Answers with how many were closed.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Shutdown;

impl Handler<Shutdown> for Registry {
    type Result = usize;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> usize {
        self.shutting_down = true;
        let ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
        let closed = ids.len();
        for id in ids {
            if let Some(entry) = self.remove(id) {
                *self
                    .counters
                    .closed_by_reason
                    .entry(CloseReason::Shutdown)
                    .or_default() += 1;
                self.metrics.record_closed(CloseReason::Shutdown);
                entry.connection.do_send(Close {
                    reason: CloseReason::Shutdown,
                });
            }
        }
        closed
    }
}

/// Frame helpers for streams that are about to register.
pub fn connected_frame(
    id: ConnectionId,
    view: &SubscriptionView,
    retry: std::time::Duration,
) -> Bytes {
    sse_frame::encode_control_with_retry(
        "connected",
        &json!({ "connection_id": id, "event_types": view.event_types, "project_id": view.project_id }),
        retry,
    )
}
