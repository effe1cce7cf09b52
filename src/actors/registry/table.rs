//! `ConnectionTable`: the Registry's state as plain data: the open streams
//! (in slab slots), the routing index over them, the per-user counts, and
//! the rules for admitting, routing to and handing off a stream. No actor,
//! no clock: the Registry drives it, and unit tests drive it directly.
//!
//! `C` is how a stream is told to close (the Registry keeps a
//! `Recipient<Close>`); the table only hands those back, it never sends.

use std::{collections::HashMap, sync::Arc};

use slab::Slab;
use tokio::sync::mpsc;

use super::routing_index::{RoutingIndex, StreamKey};
use crate::{
    domain::{EventId, ProjectId, StoredEvent, Subscription, TypeFilter, UserId},
    stream::{
        ConnectionId, ConnectionStats, OutboundFrame,
        hand_off::{Delivery, HandOff, Offered},
    },
};

/// Why a stream could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("the broker is at its connection limit")]
    Full,
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("this user has too many open streams")]
    UserStreamLimit,
    /// Admitted, but the stream rate limits refused to pay for it.
    #[error(transparent)]
    RateLimited(#[from] crate::limits::RateLimited),
}

/// What a caller is told of a stream that is not on this instance when the
/// others cannot be asked (Redis does not answer): not "no such stream".
pub const CLUSTER_UNREACHABLE: &str = "the stream is not on this instance, and the others cannot be asked now \
     (Redis does not answer); retry shortly";

/// Why a subscription change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpdateSubscriptionError {
    #[error("no live connection with this id")]
    UnknownConnection,
    #[error("the connection belongs to another user")]
    NotOwner,
    /// Not on this instance, and the others cannot be asked.
    #[error("{}", CLUSTER_UNREACHABLE)]
    ClusterUnreachable,
    /// The project is granted by the caller's token, not by the one the
    /// stream was opened with (which is what its events are checked
    /// against): reconnect with a token that grants it.
    #[error("the stream's token does not grant this project")]
    ProjectNotGranted,
    /// A task's stream carries its task's events and ends with it: another
    /// filter would keep it from its end (`complete`, `error`) and open it
    /// to events of no task.
    #[error("a task's stream follows its task; its filter cannot change")]
    TaskStream,
}

/// One open stream.
pub struct Entry<C> {
    pub id: ConnectionId,
    pub queue: mpsc::Sender<OutboundFrame>,
    pub closer: C,
    pub stats: Arc<ConnectionStats>,
    pub subscription: Subscription,
    /// The authenticated user, counted against the per-user cap.
    pub owner: Option<UserId>,
    pub delivery: Delivery,
}

impl<C> Entry<C> {
    /// Frames waiting in the stream's queue.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}

/// A stream asking to be admitted.
pub struct Admission<C> {
    pub id: ConnectionId,
    pub queue: mpsc::Sender<OutboundFrame>,
    pub closer: C,
    pub stats: Arc<ConnectionStats>,
    pub subscription: Subscription,
    pub owner: Option<UserId>,
    /// Hold live events until the stream's replay catches up.
    pub resuming: bool,
}

/// What routing one event did.
pub struct Routed<C> {
    /// Streams whose queue took the frame.
    pub delivered: u64,
    /// Streams whose queue was full: removed, to be closed as slow.
    pub slow: Vec<Entry<C>>,
    /// Task streams that just received their task's last event.
    pub finished: Vec<C>,
}

pub struct ConnectionTable<C> {
    entries: Slab<Entry<C>>,
    keys: HashMap<ConnectionId, StreamKey>,
    index: RoutingIndex,
    streams_per_user: HashMap<UserId, usize>,
    max_connections: usize,
    /// Simultaneous streams per user; 0 = no cap.
    max_streams_per_user: usize,
    /// Live events held per resuming stream before it replays again.
    hand_off_capacity: usize,
    /// Reused between routes so routing allocates nothing per event.
    scratch: Vec<StreamKey>,
}

impl<C: Clone> ConnectionTable<C> {
    pub fn new(
        max_connections: usize,
        max_streams_per_user: usize,
        hand_off_capacity: usize,
    ) -> Self {
        Self {
            entries: Slab::new(),
            keys: HashMap::new(),
            index: RoutingIndex::default(),
            streams_per_user: HashMap::new(),
            max_connections,
            max_streams_per_user,
            hand_off_capacity,
            scratch: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: ConnectionId) -> Option<&Entry<C>> {
        self.keys.get(&id).map(|&key| &self.entries[key])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry<C>> {
        self.entries.iter().map(|(_, entry)| entry)
    }

    /// Admits a stream unless the instance or its user is at the cap.
    pub fn admit(&mut self, stream: Admission<C>) -> Result<(), RegisterError> {
        if self.entries.len() >= self.max_connections {
            return Err(RegisterError::Full);
        }
        if let Some(user) = &stream.owner {
            let open = self.streams_per_user.get(user).copied().unwrap_or(0);
            if self.max_streams_per_user > 0 && open >= self.max_streams_per_user {
                return Err(RegisterError::UserStreamLimit);
            }
            self.streams_per_user.insert(user.clone(), open + 1);
        }
        let key = self.entries.insert(Entry {
            id: stream.id,
            queue: stream.queue,
            closer: stream.closer,
            stats: stream.stats,
            subscription: stream.subscription,
            owner: stream.owner,
            delivery: Delivery::new(stream.resuming),
        });
        self.index.insert(key, &self.entries[key].subscription);
        self.keys.insert(stream.id, key);
        Ok(())
    }

    pub fn remove(&mut self, id: ConnectionId) -> Option<Entry<C>> {
        let key = self.keys.remove(&id)?;
        let entry = self.entries.remove(key);
        self.index.remove(key, &entry.subscription);
        if let Some(user) = &entry.owner
            && let Some(count) = self.streams_per_user.get_mut(user)
        {
            *count -= 1;
            if *count == 0 {
                self.streams_per_user.remove(user);
            }
        }
        Some(entry)
    }

    /// Every stream, removed (the instance shuts down, or starts over).
    pub fn drain(&mut self) -> Vec<Entry<C>> {
        self.keys.clear();
        self.index = RoutingIndex::default();
        self.streams_per_user.clear();
        self.entries.drain().collect()
    }

    /// Offers `frame` (of `event`) to every stream that wants it. A stream
    /// whose queue is full is removed and handed back to be closed as slow:
    /// the Registry never waits for a client.
    pub fn route(&mut self, event: &StoredEvent, frame: &OutboundFrame) -> Routed<C> {
        let mut candidates = std::mem::take(&mut self.scratch);
        candidates.clear();
        let task_streams = self.index.candidates(event, &mut candidates);
        let mut routed = Routed {
            delivered: 0,
            slow: Vec::new(),
            finished: Vec::new(),
        };
        let mut full = Vec::new();
        for (position, &key) in candidates.iter().enumerate() {
            let Some(entry) = self.entries.get_mut(key) else {
                continue;
            };
            let wanted = if position < task_streams {
                entry.subscription.matches(event)
            } else {
                entry.subscription.viewer.can_see(event)
            };
            if !wanted {
                continue;
            }
            match entry
                .delivery
                .offer(frame, &entry.queue, self.hand_off_capacity)
            {
                Offered::Queued => {
                    routed.delivered += 1;
                    if entry.subscription.task_id.is_some() && frame.ends_task {
                        routed.finished.push(entry.closer.clone());
                    }
                }
                Offered::Full => full.push(entry.id),
                // Held for a hand-off; or the body is gone and the stream's
                // actor deregisters it by itself.
                Offered::Held | Offered::Closed => {}
            }
        }
        self.scratch = candidates;
        routed.slow = full.into_iter().filter_map(|id| self.remove(id)).collect();
        routed
    }

    /// Offers one frame to one stream, as a live event would be.
    pub fn offer(&mut self, id: ConnectionId, frame: &OutboundFrame) -> Offered {
        let Some(&key) = self.keys.get(&id) else {
            return Offered::Closed;
        };
        let entry = &mut self.entries[key];
        entry
            .delivery
            .offer(frame, &entry.queue, self.hand_off_capacity)
    }

    /// A resuming stream's replay caught up with the store (see
    /// `stream::hand_off`).
    pub fn caught_up(&mut self, id: ConnectionId, last_replayed: EventId) -> HandOff {
        let Some(&key) = self.keys.get(&id) else {
            return HandOff::Gone;
        };
        let entry = &mut self.entries[key];
        entry.delivery.caught_up(last_replayed, &entry.queue)
    }

    /// Changes a live stream's filter, if `requester` owns it (`None`: no
    /// authentication, anyone may); answers the new subscription.
    pub fn update_subscription(
        &mut self,
        id: ConnectionId,
        event_types: TypeFilter,
        project_id: Option<ProjectId>,
        requester: Option<&UserId>,
    ) -> Result<&Entry<C>, UpdateSubscriptionError> {
        let key = *self
            .keys
            .get(&id)
            .ok_or(UpdateSubscriptionError::UnknownConnection)?;
        let entry = &mut self.entries[key];
        if requester.is_some() && requester != entry.subscription.viewer.user_id.as_ref() {
            return Err(UpdateSubscriptionError::NotOwner);
        }
        if project_id
            .as_ref()
            .is_some_and(|project| !entry.subscription.viewer.projects.allows(project))
        {
            return Err(UpdateSubscriptionError::ProjectNotGranted);
        }
        if entry.subscription.task_id.is_some() {
            return Err(UpdateSubscriptionError::TaskStream);
        }
        self.index.remove(key, &entry.subscription);
        entry.subscription.event_types = event_types;
        entry.subscription.project_id = project_id;
        self.index.insert(key, &entry.subscription);
        Ok(&self.entries[key])
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::{
        domain::{EventType, ProjectAccess, TaskRef, Viewer},
        stream::hand_off::HandOff,
    };

    /// A stream's receiving end, and its id.
    struct Client {
        id: ConnectionId,
        queue: mpsc::Receiver<OutboundFrame>,
    }

    impl Client {
        fn ids(&mut self) -> Vec<i64> {
            let mut ids = Vec::new();
            while let Ok(frame) = self.queue.try_recv() {
                ids.extend(frame.event_id.map(|id| id.0));
            }
            ids
        }
    }

    fn subscription(types: &[&str], task: Option<&str>, user: Option<&str>) -> Subscription {
        Subscription {
            event_types: if types.is_empty() {
                TypeFilter::All
            } else {
                TypeFilter::only(types.iter().map(|t| EventType::parse(t).unwrap()))
            },
            project_id: None,
            task_id: task.map(|t| TaskRef::parse(t).unwrap()),
            viewer: Viewer {
                user_id: user.map(|u| UserId::parse(u).unwrap()),
                ..Viewer::anonymous()
            },
        }
    }

    /// The closer is the stream's name, so tests can see who is closed.
    fn admit(
        table: &mut ConnectionTable<&'static str>,
        name: &'static str,
        subscription: Subscription,
        capacity: usize,
        resuming: bool,
    ) -> Result<Client, RegisterError> {
        let id = ConnectionId::random();
        let (queue, receiver) = mpsc::channel(capacity);
        table.admit(Admission {
            id,
            queue,
            closer: name,
            stats: Arc::new(ConnectionStats::new(None)),
            owner: subscription.viewer.user_id.clone(),
            subscription,
            resuming,
        })?;
        Ok(Client {
            id,
            queue: receiver,
        })
    }

    fn event(id: i64, event_type: &str, task: Option<&str>) -> (StoredEvent, OutboundFrame) {
        let event = StoredEvent {
            id: Some(EventId(id)),
            event_type: EventType::parse(event_type).unwrap(),
            data: json!({}),
            project_id: None,
            user_id: None,
            task_id: task.map(|t| TaskRef::parse(t).unwrap()),
            created_at_ms: 0,
            trace_context: None,
        };
        let frame = OutboundFrame::event(&event, Bytes::from_static(b"frame"));
        (event, frame)
    }

    fn route(
        table: &mut ConnectionTable<&'static str>,
        id: i64,
        event_type: &str,
    ) -> Routed<&'static str> {
        let (event, frame) = event(id, event_type, None);
        table.route(&event, &frame)
    }

    #[test]
    fn admission_stops_at_the_instance_cap_and_at_each_users_cap() {
        let mut table = ConnectionTable::new(3, 2, 8);
        let alice = || subscription(&[], None, Some("alice"));
        let _a1 = admit(&mut table, "a1", alice(), 8, false).unwrap();
        let a2 = admit(&mut table, "a2", alice(), 8, false).unwrap();
        assert_eq!(
            admit(&mut table, "a3", alice(), 8, false).err(),
            Some(RegisterError::UserStreamLimit)
        );
        let _bob = admit(
            &mut table,
            "b",
            subscription(&[], None, Some("bob")),
            8,
            false,
        )
        .unwrap();
        assert_eq!(
            admit(&mut table, "x", subscription(&[], None, None), 8, false).err(),
            Some(RegisterError::Full)
        );
        // A stream that leaves frees both its slot and its user's.
        table.remove(a2.id).unwrap();
        assert!(admit(&mut table, "a4", alice(), 8, false).is_ok());
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn an_event_reaches_exactly_the_streams_that_want_it() {
        let mut table = ConnectionTable::new(10, 0, 8);
        let mut everything =
            admit(&mut table, "all", subscription(&[], None, None), 8, false).unwrap();
        let mut commits = admit(
            &mut table,
            "c",
            subscription(&["commit"], None, None),
            8,
            false,
        )
        .unwrap();

        let routed = route(&mut table, 1, "file_change");
        assert_eq!(routed.delivered, 1);
        let routed = route(&mut table, 2, "commit");
        assert_eq!(routed.delivered, 2);

        assert_eq!(everything.ids(), [1, 2]);
        assert_eq!(commits.ids(), [2]);
    }

    #[test]
    fn a_stream_found_by_type_still_gets_only_what_its_viewer_may_see() {
        let mut table = ConnectionTable::new(10, 0, 8);
        let p1 = ProjectId::parse("p1").unwrap();
        let mut only_p1 = subscription(&["commit"], None, None);
        only_p1.viewer.projects =
            ProjectAccess::Only(Arc::new(std::iter::once(p1.clone()).collect()));
        let mut tenant = admit(&mut table, "p1", only_p1, 8, false).unwrap();
        let mut alice = admit(
            &mut table,
            "alice",
            subscription(&["commit"], None, Some("alice")),
            8,
            false,
        )
        .unwrap();
        let commit = |id: i64, project: Option<&ProjectId>, user: Option<&str>| {
            let (mut event, _) = event(id, "commit", None);
            event.project_id = project.cloned();
            event.user_id = user.map(|u| UserId::parse(u).unwrap());
            let frame = OutboundFrame::event(&event, Bytes::from_static(b"frame"));
            (event, frame)
        };
        let p2 = ProjectId::parse("p2").unwrap();
        for (event, frame) in [
            commit(1, None, None),
            commit(2, Some(&p1), None),
            commit(3, Some(&p2), None),
            commit(4, None, Some("bob")),
            commit(5, None, Some("alice")),
        ] {
            table.route(&event, &frame);
        }
        assert_eq!(tenant.ids(), [1, 2]);
        assert_eq!(alice.ids(), [1, 2, 3, 5]);
    }

    #[test]
    fn a_full_queue_removes_only_that_stream_and_hands_it_back_as_slow() {
        let mut table = ConnectionTable::new(10, 0, 8);
        let mut healthy = admit(
            &mut table,
            "healthy",
            subscription(&[], None, None),
            8,
            false,
        )
        .unwrap();
        let slow = admit(&mut table, "slow", subscription(&[], None, None), 1, false).unwrap();

        route(&mut table, 1, "commit");
        let routed = route(&mut table, 2, "commit");

        assert_eq!(routed.delivered, 1);
        let slow_names: Vec<&str> = routed.slow.iter().map(|e| e.closer).collect();
        assert_eq!(slow_names, ["slow"]);
        assert!(table.get(slow.id).is_none());
        assert_eq!(healthy.ids(), [1, 2]);
        assert_eq!(route(&mut table, 3, "commit").delivered, 1);
    }

    #[test]
    fn a_task_stream_is_closed_after_its_tasks_last_event() {
        let mut table = ConnectionTable::new(10, 0, 8);
        let mut viewer = admit(
            &mut table,
            "viewer",
            subscription(&[], Some("t1"), None),
            8,
            false,
        )
        .unwrap();
        let (text, text_frame) = event(1, "text", Some("t1"));
        let (done, done_frame) = event(2, "complete", Some("t1"));

        assert!(table.route(&text, &text_frame).finished.is_empty());
        let routed = table.route(&done, &done_frame);

        assert_eq!(routed.finished, ["viewer"]);
        assert_eq!(viewer.ids(), [1, 2]);
    }

    #[test]
    fn live_events_during_a_replay_are_queued_once_after_it_and_never_twice() {
        let mut table = ConnectionTable::new(10, 0, 8);
        let mut resuming = admit(&mut table, "r", subscription(&[], None, None), 8, true).unwrap();
        // Published while the stream replays: held, not queued.
        for id in [11, 12, 13] {
            assert_eq!(route(&mut table, id, "commit").delivered, 0);
        }
        assert!(resuming.ids().is_empty());

        // The replay read the store through 12.
        let answer = table.caught_up(resuming.id, EventId(12));

        assert_eq!(answer, HandOff::Live { task_ended: false });
        assert_eq!(resuming.ids(), [13]);
        // 13's route arriving late (committed before, routed after) is
        // skipped; the next event flows.
        assert_eq!(route(&mut table, 13, "commit").delivered, 0);
        assert_eq!(route(&mut table, 14, "commit").delivered, 1);
        assert_eq!(resuming.ids(), [14]);
    }

    #[test]
    fn a_replay_outrun_by_live_events_is_sent_back_to_the_store() {
        let mut table = ConnectionTable::new(10, 0, 2);
        let resuming = admit(&mut table, "r", subscription(&[], None, None), 8, true).unwrap();
        for id in 1..=3 {
            route(&mut table, id, "commit");
        }

        let answer = table.caught_up(resuming.id, EventId(0));

        assert_eq!(
            answer,
            HandOff::Overflowed {
                queued_through: EventId(0)
            }
        );
        assert!(table.get(resuming.id).unwrap().delivery.is_replaying());
    }

    #[test]
    fn a_task_that_ended_during_the_replay_is_reported_at_the_hand_off() {
        let mut table = ConnectionTable::new(10, 0, 8);
        let resuming = admit(
            &mut table,
            "r",
            subscription(&[], Some("t1"), None),
            8,
            true,
        )
        .unwrap();
        let (done, done_frame) = event(5, "complete", Some("t1"));
        let routed = table.route(&done, &done_frame);
        assert!(routed.finished.is_empty(), "held, not delivered yet");

        assert_eq!(
            table.caught_up(resuming.id, EventId(4)),
            HandOff::Live { task_ended: true }
        );
    }

    #[test]
    fn a_hand_off_for_a_stream_that_left_is_gone() {
        let mut table: ConnectionTable<&'static str> = ConnectionTable::new(10, 0, 8);
        assert_eq!(
            table.caught_up(ConnectionId::random(), EventId(1)),
            HandOff::Gone
        );
    }

    #[test]
    fn only_the_owner_changes_a_subscription_and_routing_follows_the_change() {
        let mut table = ConnectionTable::new(10, 0, 8);
        let mut stream = admit(
            &mut table,
            "s",
            subscription(&["commit"], None, Some("alice")),
            8,
            false,
        )
        .unwrap();
        let bob = UserId::parse("bob").unwrap();
        let alice = UserId::parse("alice").unwrap();
        let risk = TypeFilter::only([EventType::parse("risk_alert").unwrap()]);

        assert_eq!(
            table
                .update_subscription(stream.id, risk.clone(), None, Some(&bob))
                .err(),
            Some(UpdateSubscriptionError::NotOwner)
        );
        table
            .update_subscription(stream.id, risk, None, Some(&alice))
            .unwrap();
        route(&mut table, 1, "commit");
        route(&mut table, 2, "risk_alert");

        assert_eq!(stream.ids(), [2]);
    }

    #[test]
    fn draining_empties_the_table_and_every_count() {
        let mut table = ConnectionTable::new(10, 1, 8);
        let alice = || subscription(&[], None, Some("alice"));
        admit(&mut table, "a", alice(), 8, false).unwrap();
        let drained = table.drain();
        assert_eq!(drained.len(), 1);
        assert!(table.is_empty());
        assert!(admit(&mut table, "a2", alice(), 8, false).is_ok());
    }

    /// The census's age buckets (CONTRACT §9): stale past the threshold
    /// without a write, else active; long-lived past one hour, very old
    /// past six, each counted by the stream's age when asked.
    #[test]
    fn the_census_buckets_streams_by_silence_and_age() {
        use crate::actors::registry::stats::{Counters, RegistryStats};
        const MINUTE_MS: i64 = 60_000;
        let mut table = ConnectionTable::new(10, 0, 8);
        let _stream = admit(&mut table, "s", subscription(&[], None, None), 8, false).unwrap();
        let connected = table.iter().next().unwrap().stats.connected_at_ms;
        let at = |minutes: i64| {
            let stats = RegistryStats::census(
                &Counters::default(),
                &table,
                5 * MINUTE_MS,
                connected + minutes * MINUTE_MS,
            );
            let b = stats.age_buckets;
            (b.stale, b.active, b.long_lived, b.very_old)
        };

        assert_eq!(at(1), (0, 1, 0, 0), "a minute old, written to at its start");
        assert_eq!(at(5), (1, 0, 0, 0), "silent for the whole threshold: stale");
        assert_eq!(at(59), (1, 0, 0, 0));
        assert_eq!(at(61), (1, 0, 1, 0), "past an hour: long-lived");
        assert_eq!(at(359), (1, 0, 1, 0));
        assert_eq!(
            at(361),
            (1, 0, 1, 1),
            "past six hours: very old, and long-lived"
        );
    }
}
