//! Plain types and rules of the broker: what an event is, who may see it,
//! how it looks on the wire and how an SSE stream is read back. Nothing here
//! knows about actix, diesel or HTTP.

pub mod ai_sdk_major;
pub mod answer_end;
pub mod answer_parts;
pub mod event;
pub mod event_type;
pub mod identifiers;
pub mod message_metadata;
pub mod part_end;
pub mod producer_seq;
pub mod provider_metadata;
pub mod sse_frame;
pub mod sse_parser;
pub mod steering;
pub mod subscription;
pub mod task;
pub mod task_events;
mod task_ids;
pub mod tool_events;
pub mod ui_message_stream;

pub use ai_sdk_major::AiSdkMajor;
pub use answer_end::{AnswerEnd, FinishReason, TokenUsage};
pub use answer_parts::{ANSWER_PART_EVENT_TYPES, AnswerPart, Cited, is_answer_part_event_type};
pub use event::{
    EventData, MAX_EVENTS_PER_PUBLISH, NewEvent, RawEvent, StoredEvent, TASK_END_TYPES,
};
pub use event_type::{CONTROL_EVENT_TYPES, EventType, EventTypeCatalog};
pub use identifiers::{EventId, IdempotencyKey, ProjectId, TaskRef, TraceParent, UserId};
pub use message_metadata::{
    MESSAGE_METADATA_EVENT_TYPE, checked_message_metadata, merge_metadata, merges_as_one,
};
pub use part_end::{Citation, PartEndSaid};
pub use producer_seq::ProducerSeq;
pub use provider_metadata::{add_provider_metadata, checked_provider_metadata};
pub use sse_parser::{SseEvent, SseParseError, SseParser, extend_held, shrink_after_long_line};
pub use steering::{SteeringMessage, SteeringPiece};
pub use subscription::{
    ProjectAccess, Subscription, SubscriptionView, TypeFilter, Viewer, WriteAccess,
};
pub use task::{
    ChatId, MessageId, Task, TaskChange, TaskError, TaskId, TaskStatus, check_task_text,
    parse_task_type,
};
pub use task_events::{
    STEP_END_EVENT_TYPE, TextKind, change_events, end_of, keeps_its_place, started_event,
    task_json, text_event,
};
pub use tool_events::{
    ToolEvent, ToolEventKind, ToolFlags, ToolLabels, ToolOutcome, is_tool_event_type,
};
pub use ui_message_stream::{UI_MESSAGE_STREAM_HEADER, UiMessageTranslator};

/// The UTF-8 byte order mark some writers (Windows tools, .NET) put before
/// a document: not JSON, but not the sender's mistake either (RFC 8259 §8.1
/// lets a parser ignore it), so bodies and uploads drop it.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

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

/// `ms` since the epoch as RFC 3339 with milliseconds, the one timestamp
/// format of the JSON answers.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
