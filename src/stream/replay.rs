//! `ReplayJob`: step 2 and 3 of the resume hand-off (see
//! [`hand_off`](super::hand_off)) for one stream. It reads what the stream
//! missed, from memory when the recently routed frames reach back to its
//! resume point ([`RecentFrames`]), else from the store, pushes it into
//! the stream's queue, then hands off to the Registry.

use std::{sync::Arc, time::Duration};

use actix::Recipient;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use super::{
    ConnectionId, OutboundFrame,
    catch_up::{TaskCatchUp, TaskState},
    hand_off::{HandOff, ReplayCaughtUp},
    recent::RecentFrames,
};
use crate::{
    domain::{EventId, StoredEvent, Subscription, now_ms, sse_frame},
    store::{EventCursor, EventStore, StoreError},
};

/// Stored events fetched per replay query.
const REPLAY_PAGE: i64 = 500;
/// Events copied out of memory per read: small, so ten thousand streams
/// resuming at once hold little between their queue's turns.
const MEMORY_PAGE: usize = 64;
/// Replays running at once on an instance. A reconnect storm is ten
/// thousand streams each writing a thousand frames: all at once, every
/// other request (`/health` included) waits behind a full round of them;
/// 64 at a time keep the core as busy (measured in docs/performance.md).
pub const REPLAYS_AT_ONCE: usize = 64;
/// How long a finished replay keeps its slot while its client reads what
/// was queued, at most.
const READ_WAIT: Duration = Duration::from_secs(2);
/// Frames still queued when a replay gives its slot up: live traffic.
const QUEUED_AT_RELEASE: usize = 32;
/// How often a finished replay looks whether its client has read it.
const READ_POLL: Duration = Duration::from_millis(5);
/// A replay whose client takes none of it for this long is closed as slow
/// (it resumes from what it got): waiting longer would hold a replay slot,
/// a page read from the store and the queued frames for as long as a
/// client cares not to read.
pub const REPLAY_STALL: Duration = Duration::from_secs(15);
/// The bytes of its own frames (read from the store, rolled up) a replay
/// may have queued and not yet written; the queue's length alone would
/// let a thousand queued events of 60 KB hold 60 MB for one stream.
const QUEUED_REPLAY_BYTES: usize = 1 << 20;
/// About how much event data one store read of a replay carries.
const REPLAY_PAGE_BYTES: usize = 1 << 20;
/// Span links from one replay to the publishes it replays; a trace viewer
/// shows a few, and an unbounded list would grow the span without limit.
const MAX_REPLAY_LINKS: usize = 32;

/// Why a replay stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("client went away during replay")]
    ClientGone,
    #[error("the client read none of its replay for {} s", REPLAY_STALL.as_secs())]
    Stalled,
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("registry unavailable")]
    Registry,
}

/// What a finished replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Events read from the store.
    pub from_store: u64,
    /// Events served from the recently routed frames in memory.
    pub from_memory: u64,
    /// One of the events (replayed or handed over) ended the stream's task.
    pub task_ended: bool,
}

impl Replayed {
    pub fn events(&self) -> u64 {
        self.from_store + self.from_memory
    }
}

/// Steps 2 and 3 of the hand-off for one stream.
pub struct ReplayJob {
    pub connection_id: ConnectionId,
    pub after: EventId,
    pub subscription: Subscription,
    pub store: EventStore,
    pub recent: RecentFrames,
    /// One of [`REPLAYS_AT_ONCE`] slots is held for the whole replay.
    pub slots: Arc<Semaphore>,
    pub queue: mpsc::Sender<OutboundFrame>,
    pub registry: Recipient<ReplayCaughtUp>,
    /// A task stream's current state (`progress`): its replay is rolled up
    /// (see `stream::catch_up`) and this frame follows the missed text.
    pub task_state: Option<TaskState>,
    /// `--retention`.
    pub retention: Duration,
    /// What of [`QUEUED_REPLAY_BYTES`] the replay's own queued frames hold.
    pub budget: ReplayBudget,
}

/// The replay's own frames waiting in its stream's queue, in bytes.
#[derive(Debug, Clone)]
pub struct ReplayBudget(Arc<Semaphore>);

impl Default for ReplayBudget {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(QUEUED_REPLAY_BYTES)))
    }
}

/// What a replay carries from one read to the next.
struct Progress {
    replayed: Replayed,
    links: usize,
    /// A task stream's first round is rolled up: the missed text as one
    /// event, the current state, the end.
    catch_up: Option<TaskCatchUp>,
}

impl ReplayJob {
    #[tracing::instrument(name = "replay", skip_all, fields(connection_id = %self.connection_id, sse.replay.from_id = self.after.0, sse.replay.events, sse.replay.from_memory, sse.replay.reset_to))]
    pub async fn run(self) -> Result<Replayed, ReplayError> {
        // Meanwhile the stream is registered: its live events wait in the
        // hand-off buffer (or overflow to a re-read), nothing is lost.
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return Err(ReplayError::Registry);
        };
        let mut progress = Progress {
            replayed: Replayed::default(),
            links: 0,
            catch_up: self
                .subscription
                .task_id
                .is_some()
                .then(TaskCatchUp::default),
        };
        let mut task_state = self.task_state.clone();
        let mut position = self.known_resume_point().await?;
        let mut first_read = true;
        loop {
            position = self.read_after(position, first_read, &mut progress).await?;
            first_read = false;
            if let Some(rolled) = progress.catch_up.take() {
                for frame in rolled.frames(task_state.take()) {
                    self.push_own(frame).await?;
                }
            }
            let hand_off = self
                .registry
                .send(ReplayCaughtUp {
                    id: self.connection_id,
                    last_replayed: position,
                })
                .await
                .map_err(|_| ReplayError::Registry)?;
            match hand_off {
                HandOff::Live { task_ended } => {
                    progress.replayed.task_ended |= task_ended;
                    break;
                }
                // Live events outran the hand-off buffer, or did not fit the
                // queue: they are stored, so read on after the last frame
                // actually queued, and hand off again.
                HandOff::Overflowed { queued_through } => position = queued_through,
                HandOff::Gone => return Err(ReplayError::ClientGone),
            }
        }
        self.until_read().await;
        let replayed = progress.replayed;
        let span = tracing::Span::current();
        span.record("sse.replay.events", replayed.events());
        span.record("sse.replay.from_memory", replayed.from_memory);
        Ok(replayed)
    }

    /// The resume point, unless it is past every id the store ever gave
    /// (a client of a store since wiped or restored from a backup, or of
    /// another SQLite file): nothing after it would ever come, and live
    /// events at or below it would be held back as already seen, so the
    /// stream would stay silent. Such a stream is told (`replay_reset`,
    /// whose `id:` is the new resume point, 0) and replays what the store
    /// holds from its start: every id it holds is news to a client whose
    /// ids came from another store (a wiped one's new events would
    /// otherwise be lost; a restored backup's are sent again, which the
    /// reset frame lets the client know). A task's text rolls up as ever.
    async fn known_resume_point(&self) -> Result<EventId, ReplayError> {
        let after = self.after;
        if after == EventId(0)
            || self
                .recent
                .newest_id()
                .is_some_and(|newest| after <= newest)
        {
            return Ok(after);
        }
        let known = self.store.highest_given_id().await?;
        if after <= known {
            return Ok(after);
        }
        let resume = EventId(0);
        tracing::info!(
            connection_id = %self.connection_id,
            last_event_id = after.0,
            latest_id = known.0,
            resume_from = resume.0,
            "resume point past the store's newest id: the stream replays the store from its start"
        );
        tracing::Span::current().record("sse.replay.reset_to", resume.0);
        let frame = sse_frame::encode_control_with_id(
            "replay_reset",
            resume,
            &json!({ "last_event_id": after, "latest_id": known }),
        );
        self.push_own(OutboundFrame::control(frame)).await?;
        Ok(resume)
    }

    /// Replays every event after `after` there is now; answers the last id
    /// read. Memory first: once it no longer reaches back far enough (the
    /// resume point is older, or the window moved on meanwhile), the store.
    async fn read_after(
        &self,
        after: EventId,
        first_read: bool,
        progress: &mut Progress,
    ) -> Result<EventId, ReplayError> {
        let mut position = after;
        while let Some(page) = self
            .recent
            .page_after(position, &self.subscription, MEMORY_PAGE)
        {
            for recent in page.frames {
                progress.replayed.from_memory += 1;
                self.replay(recent.event, Some(recent.frame), progress)
                    .await?;
            }
            position = page.through;
            if page.exhausted {
                return Ok(position);
            }
        }
        // The store. Only a stream that missed events the window never had
        // can have missed pruned ones.
        if first_read || position != after {
            let pruned_through = self.store.pruned_through().await?;
            if position < pruned_through && !self.task_is_whole() {
                let frame = sse_frame::encode_control(
                    "replay_truncated",
                    &json!({ "last_event_id": position, "oldest_available_id": EventId(pruned_through.0 + 1) }),
                );
                self.push_own(OutboundFrame::control(frame)).await?;
            }
        }
        let mut cursor = EventCursor::for_subscription(
            self.store.clone(),
            &self.subscription,
            position,
            REPLAY_PAGE,
        )
        .weighing(REPLAY_PAGE_BYTES);
        while !cursor.is_exhausted() {
            for event in cursor.next_page().await? {
                if !self.subscription.matches(&event) {
                    continue;
                }
                progress.replayed.from_store += 1;
                self.replay(Arc::new(event), None, progress).await?;
            }
        }
        Ok(cursor.position())
    }

    /// A task stream's task is unfinished (retention spares its events) or
    /// younger than retention: none of its events can have been removed,
    /// whatever else was (its stream from the start is whole, though older
    /// events of other streams are gone).
    fn task_is_whole(&self) -> bool {
        let cutoff = now_ms() - self.retention.as_millis() as i64;
        self.task_state
            .as_ref()
            .is_some_and(|task| task.end.is_none() || task.created_at_ms > cutoff)
    }

    /// One missed event: into the task's catch-up, or its frame (`frame`
    /// when already encoded) into the queue.
    async fn replay(
        &self,
        event: Arc<StoredEvent>,
        frame: Option<bytes::Bytes>,
        progress: &mut Progress,
    ) -> Result<(), ReplayError> {
        progress.replayed.task_ended |= event.ends_task();
        if let Some(origin) = &event.trace_context
            && progress.links < MAX_REPLAY_LINKS
            && crate::telemetry::traces_exported()
        {
            crate::telemetry::link_to(&tracing::Span::current(), origin);
            progress.links += 1;
        }
        match progress.catch_up.as_mut() {
            Some(catch_up) => {
                catch_up.add(Arc::unwrap_or_clone(event));
                Ok(())
            }
            // A frame of the recently routed ones is shared with every
            // stream that got it live; one encoded here is this stream's.
            None => match frame {
                Some(shared) => self.push(OutboundFrame::replayed(&event, shared)).await,
                None => {
                    let own = sse_frame::encode_event(&event);
                    self.push_own(OutboundFrame::replayed(&event, own)).await
                }
            },
        }
    }

    /// Waits (up to [`READ_WAIT`]) until the client has read what the replay
    /// queued, so the slot spreads the writing of a storm, not only its
    /// reading. It looks at the queue every few ms: reserving the room
    /// instead would take every slot the client frees, and the Registry,
    /// finding the queue full, would close the stream as slow.
    async fn until_read(&self) {
        let enough = self.queue.max_capacity().saturating_sub(QUEUED_AT_RELEASE);
        let deadline = tokio::time::Instant::now() + READ_WAIT;
        while self.queue.capacity() < enough
            && !self.queue.is_closed()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(READ_POLL).await;
        }
    }

    /// Queues a frame only this stream holds, once the frames of its own
    /// already queued leave room in the budget for it (a larger one waits
    /// for all of it).
    async fn push_own(&self, frame: OutboundFrame) -> Result<(), ReplayError> {
        let weight = frame.bytes.len().clamp(1, QUEUED_REPLAY_BYTES) as u32;
        let share = tokio::time::timeout(
            REPLAY_STALL,
            self.budget.0.clone().acquire_many_owned(weight),
        )
        .await
        .map_err(|_| ReplayError::Stalled)?
        .map_err(|_| ReplayError::ClientGone)?;
        self.push(frame.holding(share)).await
    }

    async fn push(&self, frame: OutboundFrame) -> Result<(), ReplayError> {
        // Awaiting is fine here: only this stream waits for its own client,
        // for as long as it reads at all.
        match tokio::time::timeout(REPLAY_STALL, self.queue.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(ReplayError::ClientGone),
            Err(_stalled) => Err(ReplayError::Stalled),
        }
    }
}
