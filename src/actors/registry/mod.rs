//! `Registry`: the only owner of the set of open streams.
//!
//! It routes each event through the connection table's index to the streams
//! that want it, encodes the frame once and hands the same bytes to each
//! stream's bounded queue. It never awaits a consumer: a full queue closes
//! that stream (`CloseReason::Slow`) and the client resumes by id. During a
//! resume the stream's live events wait in the hand-off buffer until its
//! replay has caught up (`stream::hand_off`).
//!
//! The state and its rules are plain data in [`table`] (unit-tested); this
//! actor drives it, counts ([`stats`]) and sends the closes.
//!
//! **A panic here is not fatal.** Every handler runs inside a guard: if one
//! panics, the Registry closes every stream it knew (their clients reconnect
//! and resume by id, so nothing is lost), starts over with an empty table,
//! counts the reset (`sse_registry_resets_total`) and keeps serving. Without
//! it a bug in one handler would stop the actor and turn every later stream
//! open into a 503.

mod operations;
mod routing;
mod routing_index;
pub mod stats;
pub mod table;
mod task_ends;

use std::panic::{AssertUnwindSafe, catch_unwind};

use actix::{Actor, Context, Handler, Message, MessageResult, Recipient};
use tokio::sync::mpsc;

pub use operations::{
    ActiveConnections, Disconnect, FindStale, GetCounters, ListConnections, RenewError, RenewToken,
    StaleConnection, StaleScan, TakeCensus,
};
pub use routing::{Route, RoutedThrough};
pub use routing_index::RoutingIndex;
pub use stats::{AgeBuckets, ConnectionInfo, ConnectionPage, RegistryStats};
pub use table::{CLUSTER_UNREACHABLE, RegisterError, UpdateSubscriptionError};
pub use task_ends::{TaskEnded, WatchTaskEnds};

use self::{
    stats::Counters,
    table::{Admission, ConnectionTable, Entry},
};
use crate::{
    domain::{
        EventId, EventTypeCatalog, ProjectId, SubscriptionView, TypeFilter, UserId, now_ms,
        sse_frame,
    },
    stream::{
        Close, CloseReason, ConnectionId, ConnectionStats, Greeting, OutboundFrame, RecentFrames,
        StreamFormat,
        hand_off::{HandOff, Offered, ReplayCaughtUp},
    },
    telemetry::Metrics,
};

pub struct Registry {
    table: ConnectionTable<Recipient<Close>>,
    catalog: EventTypeCatalog,
    instance_id: String,
    shutting_down: bool,
    counters: Counters,
    metrics: Metrics,
    /// The highest stored id routed so far: the drain waits for it to reach
    /// the last stored event before saying goodbye.
    routed_through: EventId,
    /// To rebuild an empty table after a panic.
    limits: (usize, usize, usize),
    /// Told of every task's last event routed here, from any instance, so
    /// a task written to here learns at once that it ended elsewhere.
    task_ends: Option<Recipient<TaskEnded>>,
    /// Every routed stored event goes here with its frame, for resumes.
    recent: RecentFrames,
}

impl Registry {
    pub fn new(
        catalog: EventTypeCatalog,
        max_connections: usize,
        queue_capacity: usize,
        instance_id: String,
        metrics: Metrics,
    ) -> Self {
        metrics.set_max_connections(max_connections);
        Self {
            table: ConnectionTable::new(max_connections, 0, queue_capacity),
            catalog,
            instance_id,
            shutting_down: false,
            counters: Counters::default(),
            metrics,
            routed_through: EventId(0),
            limits: (max_connections, 0, queue_capacity),
            task_ends: None,
            recent: RecentFrames::new(0, 0, std::time::Duration::ZERO),
        }
    }

    /// Starts from `latest`, the last id stored before this instance
    /// started: a stream admitted before anything is routed starts there.
    pub fn with_routed_through(mut self, latest: EventId) -> Self {
        self.routed_through = latest;
        self
    }

    /// Keeps what it routes in `recent`, where resumes read it.
    pub fn with_recent_frames(mut self, recent: RecentFrames) -> Self {
        self.recent = recent;
        self
    }

    /// Caps simultaneous streams per user (0 = no cap).
    pub fn with_max_streams_per_user(mut self, max: usize) -> Self {
        let (connections, _, hand_off) = self.limits;
        self.limits = (connections, max, hand_off);
        self.table = ConnectionTable::new(connections, max, hand_off);
        self
    }

    /// Removes a stream from the table and counts its close; an id no
    /// longer there (a slow stream, removed and counted when detected; a
    /// second word of the same close) does nothing.
    fn forget(&mut self, id: ConnectionId, reason: CloseReason) {
        let Some(entry) = self.table.remove(id) else {
            return;
        };
        self.counters.record_close(reason);
        self.metrics.record_closed(reason);
        self.metrics.set_active_connections(self.table.len());
        log_closed(&entry, reason);
    }

    /// Runs one handler's work; a panic in it resets the Registry instead
    /// of stopping it (see the module doc) and answers `fallback`.
    fn guarded<R>(&mut self, fallback: R, work: impl FnOnce(&mut Self) -> R) -> R {
        match catch_unwind(AssertUnwindSafe(|| work(self))) {
            Ok(answer) => answer,
            Err(_) => {
                self.reset();
                fallback
            }
        }
    }

    fn reset(&mut self) {
        let (connections, per_user, hand_off) = self.limits;
        // A fresh table, not the old one cleared: a panic may have left
        // the old one half-updated.
        let mut open = std::mem::replace(
            &mut self.table,
            ConnectionTable::new(connections, per_user, hand_off),
        );
        let streams = open.drain();
        tracing::error!(
            streams = streams.len(),
            "the registry panicked: every stream is closed and resumes by id"
        );
        self.metrics.record_registry_reset();
        for entry in streams {
            self.close(entry, CloseReason::Disconnected);
        }
        self.metrics.set_active_connections(0);
    }

    /// Closes a stream already out of the table (slow, shutdown, a reset):
    /// counted and logged here, as `forget` does for the others.
    fn close(&mut self, entry: Entry<Recipient<Close>>, reason: CloseReason) {
        self.counters.record_close(reason);
        self.metrics.record_closed(reason);
        log_closed(&entry, reason);
        entry.closer.do_send(Close { reason });
    }

    fn close_slow(&mut self, entry: Entry<Recipient<Close>>) {
        self.counters.events_dropped += 1;
        tracing::info!(connection_id = %entry.id, reason = "slow", queued = entry.queued(), "closing slow stream");
        self.close(entry, CloseReason::Slow);
    }
}

/// The one `stream closed` line of a stream, whatever closed it.
fn log_closed<C>(entry: &Entry<C>, reason: CloseReason) {
    tracing::info!(
        connection_id = %entry.id,
        reason = reason.as_str(),
        events_sent = entry.stats.events_sent(),
        duration_secs = (now_ms() - entry.stats.connected_at_ms) as f64 / 1000.0,
        "stream closed"
    );
}

impl Actor for Registry {
    type Context = Context<Self>;
}

/// Admit a new stream. Sent before the response starts, so a full broker
/// answers 503 instead of an empty stream.
#[derive(Message)]
#[rtype(result = "Result<(), RegisterError>")]
pub struct Register {
    pub id: ConnectionId,
    pub queue: mpsc::Sender<OutboundFrame>,
    /// How the Registry closes the stream.
    pub connection: Recipient<Close>,
    pub stats: std::sync::Arc<ConnectionStats>,
    pub subscription: crate::domain::Subscription,
    /// The authenticated user, for the per-user stream cap.
    pub owner: Option<UserId>,
    /// Hold live events until the stream's replay catches up.
    pub resuming: bool,
    /// How the client reads it: the label of the open counter.
    pub format: StreamFormat,
    /// Its first frame, queued here so nothing routed comes before it.
    pub greeting: Greeting,
    /// Paid against the stream rate limits once admitted (`None`: free).
    pub charge: Option<crate::limits::StreamCharge>,
}

impl Handler<Register> for Registry {
    type Result = Result<(), RegisterError>;

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) -> Self::Result {
        if self.shutting_down {
            self.metrics.record_refused_stream("shutting_down");
            return Err(RegisterError::ShuttingDown);
        }
        self.guarded(Err(RegisterError::ShuttingDown), |registry| {
            // A new queue has room; refused, the queue goes with the stream.
            let _ = msg
                .queue
                .try_send(msg.greeting.frame(registry.routed_through));
            if let Some(id) = msg.greeting.resume_point(registry.routed_through) {
                msg.stats.greeted_with(id);
            }
            let id = msg.id;
            let admitted = registry
                .table
                .admit(Admission {
                    id,
                    queue: msg.queue,
                    closer: msg.connection,
                    stats: msg.stats,
                    subscription: msg.subscription,
                    owner: msg.owner,
                    resuming: msg.resuming,
                })
                .and_then(|()| {
                    // Charged only now, so a stream refused above costs
                    // the client nothing of its rate budget.
                    msg.charge
                        .map_or(Ok(()), |charge| charge.pay())
                        .map_err(|limited| {
                            registry.table.remove(id);
                            RegisterError::from(limited)
                        })
                });
            match admitted {
                Ok(()) => {
                    registry.counters.total_connections += 1;
                    registry.metrics.record_opened(msg.format);
                    registry
                        .metrics
                        .set_active_connections(registry.table.len());
                }
                Err(RegisterError::UserStreamLimit) => registry
                    .metrics
                    .record_rate_limited(crate::limits::Limit::StreamsPerUserCap.as_str()),
                Err(RegisterError::Full) => registry.metrics.record_refused_stream("full"),
                Err(_) => {}
            }
            admitted
        })
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
        self.guarded((), |registry| registry.forget(msg.id, msg.reason));
    }
}

impl Handler<ReplayCaughtUp> for Registry {
    type Result = MessageResult<ReplayCaughtUp>;

    fn handle(&mut self, msg: ReplayCaughtUp, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.guarded(HandOff::Gone, |registry| {
            registry.table.caught_up(msg.id, msg.last_replayed)
        }))
    }
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
        self.guarded(Err(UpdateSubscriptionError::UnknownConnection), |registry| {
            let catalog = registry.catalog.clone();
            let entry = registry.table.update_subscription(
                msg.id,
                msg.event_types,
                msg.project_id,
                msg.requester.as_ref(),
            )?;
            let view = SubscriptionView::of(&entry.subscription, &catalog);
            let frame = OutboundFrame::control(sse_frame::encode_control(
                "subscription_updated",
                &serde_json::json!({ "connection_id": msg.id, "event_types": view.event_types, "project_id": view.project_id }),
            ));
            // Through the same path as events, so it precedes every event of
            // the new filter (and waits for a replay like them).
            if registry.table.offer(msg.id, &frame) == Offered::Full
                && let Some(entry) = registry.table.remove(msg.id)
            {
                registry
                    .metrics
                    .set_active_connections(registry.table.len());
                registry.close_slow(entry);
            }
            Ok(view)
        })
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
        let streams = self.table.drain();
        let closed = streams.len();
        for entry in streams {
            self.close(entry, CloseReason::Shutdown);
        }
        self.metrics.set_active_connections(0);
        closed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use actix::{Actor, AsyncContext, Context, Handler, Message};

    use super::*;
    use crate::domain::{Subscription, TypeFilter, Viewer};

    /// Stands in for a stream's actor: records the closes it is sent.
    struct ClosedWith(Arc<Mutex<Vec<CloseReason>>>);

    impl Actor for ClosedWith {
        type Context = Context<Self>;
    }

    impl Handler<Close> for ClosedWith {
        type Result = ();

        fn handle(&mut self, msg: Close, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(msg.reason);
        }
    }

    /// A handler bug, on purpose: only unit tests can send it.
    #[derive(Message)]
    #[rtype(result = "usize")]
    struct Explode;

    impl Handler<Explode> for Registry {
        type Result = usize;

        fn handle(&mut self, _: Explode, _: &mut Context<Self>) -> usize {
            self.guarded(0, |_| panic!("a bug in a Registry handler"))
        }
    }

    /// A registration whose closes land in `closes`.
    fn register(
        closes: &Arc<Mutex<Vec<CloseReason>>>,
    ) -> (Register, mpsc::Receiver<OutboundFrame>) {
        let (queue, receiver) = mpsc::channel(8);
        let closer = ClosedWith(closes.clone()).start().recipient();
        (
            Register {
                id: ConnectionId::random(),
                queue,
                connection: closer,
                stats: std::sync::Arc::new(ConnectionStats::new(None)),
                subscription: Subscription {
                    event_types: TypeFilter::All,
                    project_id: None,
                    task_id: None,
                    viewer: Viewer::anonymous(),
                },
                owner: None,
                resuming: false,
                format: StreamFormat::Sse,
                greeting: Greeting::new(
                    serde_json::json!({}),
                    std::time::Duration::from_secs(3),
                    true,
                ),
                charge: None,
            },
            receiver,
        )
    }

    #[actix_rt::test]
    async fn a_panicking_handler_closes_every_stream_and_the_registry_keeps_serving() {
        // Arrange
        let metrics = Metrics::new("unit", None);
        let registry =
            Registry::new(EventTypeCatalog::new(&[]), 10, 8, "unit".into(), metrics).start();
        let closes = Arc::new(Mutex::new(Vec::new()));
        let (first, _first_queue) = register(&closes);
        registry.send(first).await.unwrap().unwrap();
        assert_eq!(registry.send(ActiveConnections).await.unwrap(), 1);

        // Act
        let answer = registry.send(Explode).await;

        // Assert: the handler's fallback answer, no dead mailbox.
        assert_eq!(answer.ok(), Some(0));
        assert_eq!(registry.send(ActiveConnections).await.unwrap(), 0);
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(*closes.lock().unwrap(), [CloseReason::Disconnected]);
        // New streams are admitted as before.
        let (second, _second_queue) = register(&closes);
        assert_eq!(registry.send(second).await.unwrap(), Ok(()));
        assert_eq!(registry.send(ActiveConnections).await.unwrap(), 1);
    }

    /// Registered, but its actor is gone before it ever ran: what a
    /// client leaving during its admission used to leave behind.
    fn register_orphan(closes: &Arc<Mutex<Vec<CloseReason>>>) -> (Register, ConnectionId) {
        let (mut registration, _) = register(closes);
        let never_run = Context::<ClosedWith>::new();
        registration.connection = never_run.address().recipient();
        let id = registration.id;
        (registration, id)
    }

    #[actix_rt::test]
    async fn a_stream_whose_actor_is_gone_is_removed_by_the_janitor_and_by_an_operator() {
        // Arrange: two such streams, stale at once.
        let metrics = Metrics::new("unit", None);
        let registry = Registry::new(
            EventTypeCatalog::new(&[]),
            10,
            8,
            "unit".into(),
            metrics.clone(),
        )
        .start();
        let closes = Arc::new(Mutex::new(Vec::new()));
        let (first, _) = register_orphan(&closes);
        let (second, second_id) = register_orphan(&closes);
        registry.send(first).await.unwrap().unwrap();
        registry.send(second).await.unwrap().unwrap();
        assert_eq!(registry.send(ActiveConnections).await.unwrap(), 2);

        // Act: an operator disconnects one; the Janitor runs.
        let found = registry
            .send(operations::Disconnect {
                id: second_id,
                scope: crate::domain::ProjectAccess::All,
            })
            .await
            .unwrap();
        let janitor = crate::actors::janitor::Janitor::new(
            registry.clone(),
            std::time::Duration::from_secs(3600),
            10,
            std::time::Duration::ZERO,
            metrics,
        )
        .start();
        let report = janitor
            .send(crate::actors::janitor::RunCleanup {
                batch_size: None,
                periodic: false,
            })
            .await
            .unwrap()
            .unwrap();

        // Assert: both gone from the table, the Janitor's one counted
        // cleaned, not failed.
        assert!(found);
        assert_eq!((report.cleaned, report.failed), (1, 0), "{report:?}");
        assert_eq!(registry.send(ActiveConnections).await.unwrap(), 0);
    }

    fn first_frame(queue: &mut mpsc::Receiver<OutboundFrame>) -> String {
        String::from_utf8(queue.try_recv().unwrap().bytes.to_vec()).unwrap()
    }

    #[actix_rt::test]
    async fn a_new_stream_starts_at_the_last_id_routed_before_it_and_gets_everything_after() {
        // Arrange: 7 was stored before this instance started.
        let metrics = Metrics::new("unit", None);
        let registry = Registry::new(EventTypeCatalog::new(&[]), 10, 8, "unit".into(), metrics)
            .with_routed_through(EventId(7))
            .start();
        let closes = Arc::new(Mutex::new(Vec::new()));
        let (first, mut first_queue) = register(&closes);

        // Act
        registry.send(first).await.unwrap().unwrap();
        let event = crate::domain::StoredEvent {
            id: Some(EventId(8)),
            event_type: crate::domain::EventType::parse("commit").unwrap(),
            data: serde_json::json!({}),
            project_id: None,
            user_id: None,
            task_id: None,
            created_at_ms: now_ms(),
            trace_context: None,
        };
        registry
            .send(Route {
                events: vec![event],
                previous_id: Some(EventId(7)),
            })
            .await
            .unwrap();
        let (second, mut second_queue) = register(&closes);
        registry.send(second).await.unwrap().unwrap();

        // Assert: each `connected` names the last id routed before it, and
        // what is routed after it follows.
        assert!(first_frame(&mut first_queue).contains("id: 7\nevent: connected\n"));
        assert_eq!(first_queue.try_recv().unwrap().event_id, Some(EventId(8)));
        assert!(first_frame(&mut second_queue).contains("id: 8\nevent: connected\n"));
        assert!(second_queue.try_recv().is_err());
    }
}
