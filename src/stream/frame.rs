//! `OutboundFrame`: one encoded frame waiting in a stream's queue.

use std::{ops::Deref, sync::Arc};

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use crate::domain::{EventId, StoredEvent};

/// One encoded frame waiting in a stream's queue: a pointer to a [`Frame`]
/// every stream the event goes to shares. A queue slot is 8 bytes, so the
/// queue tokio allocates up front for each stream (32 slots) stays small;
/// with the frame inline it was 2 KiB of every idle stream.
#[derive(Debug, Clone)]
pub struct OutboundFrame(Arc<Frame>);

/// What an [`OutboundFrame`] points to.
#[derive(Debug)]
pub struct Frame {
    pub bytes: Bytes,
    /// Set for stored events: becomes the stream's `last_event_id` once written.
    pub event_id: Option<EventId>,
    /// The last event of a task: a task stream ends after it.
    pub ends_task: bool,
    /// Publish time (ms since the epoch) of a live event, 0 otherwise:
    /// the start of this subscriber's delivery lag.
    pub published_at_ms: i64,
    /// A replayed frame read from the store is this stream's own copy: its
    /// share of the replay's byte budget, given back once it is written.
    pub replay_share: Option<OwnedSemaphorePermit>,
}

impl Deref for OutboundFrame {
    type Target = Frame;

    fn deref(&self) -> &Frame {
        &self.0
    }
}

impl From<Frame> for OutboundFrame {
    fn from(frame: Frame) -> Self {
        Self(Arc::new(frame))
    }
}

impl OutboundFrame {
    /// A broker-generated frame (`connected`, `heartbeat`, ...).
    pub fn control(bytes: Bytes) -> Self {
        Frame {
            bytes,
            event_id: None,
            ends_task: false,
            published_at_ms: 0,
            replay_share: None,
        }
        .into()
    }

    /// The frame of live `event`, already encoded into `bytes`.
    pub fn event(event: &StoredEvent, bytes: Bytes) -> Self {
        Frame {
            bytes,
            event_id: event.id,
            ends_task: event.ends_task(),
            published_at_ms: event.created_at_ms,
            replay_share: None,
        }
        .into()
    }

    /// The frame of a replayed `event`: its age is the client's absence,
    /// not delivery lag, so it is left out of the lag histogram.
    pub fn replayed(event: &StoredEvent, bytes: Bytes) -> Self {
        Frame {
            bytes,
            event_id: event.id,
            ends_task: event.ends_task(),
            published_at_ms: 0,
            replay_share: None,
        }
        .into()
    }

    /// This frame holding `share` of a replay's budget until it is written.
    /// A frame other streams share too costs this stream nothing: it keeps
    /// no share.
    pub fn holding(mut self, share: OwnedSemaphorePermit) -> Self {
        if let Some(frame) = Arc::get_mut(&mut self.0) {
            frame.replay_share = Some(share);
        }
        self
    }
}
