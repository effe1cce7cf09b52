//! `RecentFrames`: the stored events routed last, with the frames already
//! encoded for them, so a resuming stream is served from memory.
//!
//! A reconnect storm (every client of a restarted proxy resuming at once,
//! each a few hundred events behind) otherwise costs one store query per
//! page per stream, and re-encodes the same rows for every one of them. The
//! Registry appends each routed batch here, in id order, right after routing
//! it; a replay whose resume point is inside the window reads from here and
//! hands off at the newest id it read, without asking the store anything.
//!
//! The window is exact: it holds *every* stored event with an id in
//! `(floor, newest]`. A batch whose `previous_id` is not the newest id held
//! (another writer, a cluster instance, a gap) starts the window over, so a
//! resume point outside it always goes to the store. Events past retention
//! are never served from here either: the store may have pruned them, and
//! the resume must then say `replay_truncated` as the store's replay does.
//!
//! Shared by the Registry (the one writer, on its thread) and the replay
//! jobs (readers, on the HTTP workers): a read lock is held only while one
//! page of `Arc`s and `Bytes` handles is copied out.

use std::{
    collections::VecDeque,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use bytes::{Bytes, BytesMut};

use crate::domain::{EventId, StoredEvent, Subscription, now_ms};

/// Memory per held event beyond its frame's bytes, for the byte bound: the
/// event's allocation, its queue slot, the frame's allocation slack and
/// shared header. Measured: 16,384 held events of ~150-byte frames took
/// 11.7 MiB of heap (21 MiB while every event kept its parsed data).
const ENTRY_OVERHEAD: usize = 560;

/// Held frames are copied into shared blocks of this size. A frame of its
/// own would be one small allocation per held event, made between the
/// streams' buffers as events arrive; long after the streams close, those
/// scattered blocks pin the pages their neighbours freed. Frames leave the
/// window oldest first, so a block is freed whole once its last frame has
/// left.
const FRAME_BLOCK_BYTES: usize = 256 * 1024;

/// One held event: what `Subscription::matches` and a task's catch-up read,
/// and the frame every stream gets.
#[derive(Debug, Clone)]
pub struct RecentFrame {
    /// The event as routed, except that only a task's events keep their
    /// `data` (a task stream's catch-up rolls their text up from it); any
    /// other event's `data` is `Null`, as its frame carries it to every
    /// reader. The parsed data was two thirds of a held event's memory.
    pub event: Arc<StoredEvent>,
    pub frame: Bytes,
}

impl RecentFrame {
    fn held(mut event: StoredEvent, frame: Bytes) -> Self {
        if event.task_id.is_none() {
            event.data = serde_json::Value::Null;
        }
        Self {
            event: Arc::new(event),
            frame,
        }
    }

    fn id(&self) -> EventId {
        self.event.id.unwrap_or(EventId(0))
    }

    fn cost(&self) -> usize {
        // A kept `data` takes about twice its compact JSON once parsed.
        let data = if self.event.task_id.is_some() {
            self.frame.len() * 2
        } else {
            0
        };
        self.frame.len() + data + ENTRY_OVERHEAD
    }
}

/// What one read found.
#[derive(Debug)]
pub struct RecentPage {
    /// The matching events, oldest first.
    pub frames: Vec<RecentFrame>,
    /// Every held event up to this id was looked at.
    pub through: EventId,
    /// Nothing newer than `through` is held (yet).
    pub exhausted: bool,
}

#[derive(Debug)]
struct Window {
    entries: VecDeque<RecentFrame>,
    /// Every stored event with an id in `(floor, newest]` is held; `None`
    /// until the first batch with a known predecessor arrives.
    floor: Option<EventId>,
    bytes: usize,
    /// Where the next held frame is copied (see [`FRAME_BLOCK_BYTES`]).
    block: BytesMut,
}

impl Window {
    fn newest(&self) -> Option<EventId> {
        self.entries.back().map(RecentFrame::id).or(self.floor)
    }

    fn start_over(&mut self, floor: Option<EventId>) {
        self.entries.clear();
        self.bytes = 0;
        self.floor = floor;
    }

    /// `frame`'s bytes, copied into the current block.
    fn hold_frame(&mut self, frame: &[u8]) -> Bytes {
        if self.block.capacity() - self.block.len() < frame.len() {
            self.block = BytesMut::with_capacity(FRAME_BLOCK_BYTES.max(frame.len()));
        }
        self.block.extend_from_slice(frame);
        self.block.split_to(frame.len()).freeze()
    }

    fn pop_oldest(&mut self) {
        if let Some(oldest) = self.entries.pop_front() {
            self.bytes -= oldest.cost();
            self.floor = Some(oldest.id());
        }
    }
}

/// The bounded window of recently routed stored events (see the module doc).
#[derive(Debug, Clone)]
pub struct RecentFrames {
    window: Arc<RwLock<Window>>,
    max_events: usize,
    max_bytes: usize,
    retention: Duration,
}

impl RecentFrames {
    /// Holds up to `max_events` events and about `max_bytes`; `max_events`
    /// 0 holds nothing (every replay reads the store).
    pub fn new(max_events: usize, max_bytes: usize, retention: Duration) -> Self {
        Self {
            window: Arc::new(RwLock::new(Window {
                entries: VecDeque::new(),
                floor: None,
                bytes: 0,
                block: BytesMut::new(),
            })),
            max_events,
            max_bytes,
            retention,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.max_events > 0
    }

    /// Appends a routed batch: `previous_id` is the id committed before it
    /// (`None`: unknown, which starts the window over after the batch).
    /// Events without an id (not stored) are not held.
    pub fn extend(
        &self,
        previous_id: Option<EventId>,
        events: impl IntoIterator<Item = (StoredEvent, Bytes)>,
    ) {
        if !self.is_enabled() {
            return;
        }
        let mut window = self.window.write().unwrap_or_else(PoisonError::into_inner);
        let continues = previous_id.is_some() && previous_id == window.newest();
        if !continues {
            window.start_over(previous_id);
        }
        for (event, frame) in events {
            let Some(id) = event.id else { continue };
            if window.floor.is_none() || window.newest().is_some_and(|newest| id <= newest) {
                // Unknown predecessor, or out of order: hold nothing up to it.
                window.start_over(Some(id));
                continue;
            }
            let frame = window.hold_frame(&frame);
            let entry = RecentFrame::held(event, frame);
            window.bytes += entry.cost();
            window.entries.push_back(entry);
        }
        while window.entries.len() > self.max_events || window.bytes > self.max_bytes {
            window.pop_oldest();
        }
        let cutoff = now_ms() - self.retention.as_millis() as i64;
        while window
            .entries
            .front()
            .is_some_and(|oldest| oldest.event.created_at_ms < cutoff)
        {
            window.pop_oldest();
        }
    }

    /// Up to `limit` events after `after` that `subscription` matches, or
    /// `None` when the window does not hold everything after `after` (the
    /// caller reads the store).
    pub fn page_after(
        &self,
        after: EventId,
        subscription: &Subscription,
        limit: usize,
    ) -> Option<RecentPage> {
        if !self.is_enabled() {
            return None;
        }
        let window = self.window.read().unwrap_or_else(PoisonError::into_inner);
        let floor = window.floor?;
        if after < floor {
            return None;
        }
        let start = window.entries.partition_point(|entry| entry.id() <= after);
        let cutoff = now_ms() - self.retention.as_millis() as i64;
        if window
            .entries
            .get(start)
            .is_some_and(|next| next.event.created_at_ms < cutoff)
        {
            return None;
        }
        let mut frames = Vec::new();
        let mut through = after.max(floor);
        for entry in window.entries.range(start..) {
            if frames.len() == limit {
                return Some(RecentPage {
                    frames,
                    through,
                    exhausted: false,
                });
            }
            through = entry.id();
            if subscription.matches(&entry.event) {
                frames.push(entry.clone());
            }
        }
        Some(RecentPage {
            frames,
            through: window.newest().unwrap_or(through).max(through),
            exhausted: true,
        })
    }

    /// The newest id routed through the window (`None` when off or empty).
    pub fn newest_id(&self) -> Option<EventId> {
        if !self.is_enabled() {
            return None;
        }
        self.window
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .newest()
    }

    /// Events held now.
    pub fn len(&self) -> usize {
        self.window
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "recent_tests.rs"]
mod tests;
