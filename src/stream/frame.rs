//! `OutboundFrame`: one encoded frame waiting in a stream's queue.

use bytes::Bytes;

use crate::domain::{EventId, StoredEvent};

/// One encoded frame waiting in a stream's queue.
#[derive(Debug, Clone)]
pub struct OutboundFrame {
    pub bytes: Bytes,
    /// Set for stored events: becomes the stream's `last_event_id` once written.
    pub event_id: Option<EventId>,
    /// The last event of a task: a task stream ends after it.
    pub ends_task: bool,
    /// Publish time (ms since the epoch) of a live event, 0 otherwise:
    /// the start of this subscriber's delivery lag.
    pub published_at_ms: i64,
}

impl OutboundFrame {
    /// A broker-generated frame (`connected`, `heartbeat`, ...).
    pub fn control(bytes: Bytes) -> Self {
        Self {
            bytes,
            event_id: None,
            ends_task: false,
            published_at_ms: 0,
        }
    }

    /// The frame of live `event`, already encoded into `bytes`.
    pub fn event(event: &StoredEvent, bytes: Bytes) -> Self {
        Self {
            bytes,
            event_id: event.id,
            ends_task: event.ends_task(),
            published_at_ms: event.created_at_ms,
        }
    }

    /// The frame of a replayed `event`: its age is the client's absence,
    /// not delivery lag, so it is left out of the lag histogram.
    pub fn replayed(event: &StoredEvent, bytes: Bytes) -> Self {
        Self {
            published_at_ms: 0,
            ..Self::event(event, bytes)
        }
    }
}
