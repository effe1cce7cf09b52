//! Plain types and rules of the broker: what an event is, who may see it,
//! how it looks on the wire and how an SSE stream is read back. Nothing here
//! knows about actix, diesel or HTTP.

pub mod event;
pub mod sse_frame;
pub mod sse_parser;
pub mod subscription;
pub mod task;

pub use event::TaskRef;
pub use event::{
    EventData, EventId, EventType, EventTypeCatalog, IdempotencyKey, NewEvent, ProjectId, RawEvent,
    StoredEvent, TraceParent, UserId,
};
pub use sse_parser::{SseEvent, SseParseError, SseParser};
pub use subscription::{ProjectAccess, Subscription, SubscriptionView, TypeFilter, Viewer};
pub use task::{Task, TaskChange, TaskError, TaskId, TaskStatus, parse_task_type};

/// Client input quoted inside an error message: a JSON string literal, so
/// a line break reads `\n` (never Rust's `\u{2028}` or `{:?}` escapes), cut
/// at 64 characters so a message stays readable.
pub fn quoted_input(text: &str) -> String {
    const SHOWN: usize = 64;
    let mut shown: String = text.chars().take(SHOWN).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    serde_json::Value::String(shown).to_string()
}

/// Milliseconds since the Unix epoch: the one clock unit stored and sent.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
