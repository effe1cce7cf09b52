//! The earlier parts of a continued message, for a UI message stream that
//! rebuilds the whole message (a chat resuming a turn that continues it;
//! see `services::tasks::continued`): each earlier task's stored events
//! rolled up as a late viewer of that task gets them (its text as one
//! event per run, its tool events in place, its end), one task after the
//! other, oldest first. They are finished tasks: read from the store once,
//! with no live part and no hand-off.

use bytes::{Bytes, BytesMut};

use super::catch_up::{TaskCatchUp, TaskState};
use crate::{
    domain::{EventId, Subscription},
    store::{EventCursor, EventStore, StoreError},
};

/// Stored events read per query.
const PAGE: i64 = 500;

/// The frames of the tasks `earlier` (each its subscription and its state
/// as read), concatenated.
#[tracing::instrument(name = "ui_message.earlier_parts", skip_all, fields(sse.message.earlier_tasks = earlier.len(), sse.message.earlier_bytes))]
pub async fn earlier_frames(
    store: &EventStore,
    earlier: Vec<(Subscription, TaskState)>,
) -> Result<Bytes, StoreError> {
    let mut frames = BytesMut::new();
    for (subscription, state) in earlier {
        let mut cursor =
            EventCursor::for_subscription(store.clone(), &subscription, EventId(0), PAGE);
        let mut catch_up = TaskCatchUp::default();
        while !cursor.is_exhausted() {
            for event in cursor.next_page().await? {
                if subscription.matches(&event) {
                    catch_up.add(event);
                }
            }
        }
        for frame in catch_up.frames(Some(state)) {
            frames.extend_from_slice(&frame.bytes);
        }
    }
    tracing::Span::current().record("sse.message.earlier_bytes", frames.len());
    Ok(frames.freeze())
}
