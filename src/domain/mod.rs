//! Plain types and rules of the broker: what an event is, who may see it, and
//! how it looks on the wire. Nothing here knows about actix, diesel or HTTP.

pub mod event;
pub mod sse_frame;
pub mod subscription;
pub mod task;

pub use event::TaskRef;
pub use event::{
    EventData, EventId, EventType, EventTypeCatalog, IdempotencyKey, NewEvent, ProjectId, RawEvent,
    StoredEvent, TraceParent, UserId,
};
pub use subscription::{ProjectAccess, Subscription, SubscriptionView, TypeFilter, Viewer};
pub use task::{Task, TaskChange, TaskError, TaskId, TaskStatus, parse_task_type};

/// Milliseconds since the Unix epoch: the one clock unit stored and sent.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
