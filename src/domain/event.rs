//! Events as publishers send them and as the store hands them back, with
//! their payload rules. The identifiers they carry are parsed once at the
//! edge (`identifiers`, `event_type`), so the rest of the broker never
//! re-checks a string.

use serde::Serialize;
use serde_json::Value;

use super::{EventId, EventType, IdempotencyKey, ProjectId, TaskRef, TraceParent, UserId};

/// Events accepted in one publish request (one array): a stream may
/// receive that many at once.
/// The types of a task's last event, with its `task_id` (see
/// [`StoredEvent::ends_task`]).
pub const TASK_END_TYPES: [&str; 2] = ["complete", "error"];

pub const MAX_EVENTS_PER_PUBLISH: usize = 1000;

/// Why a publisher's event was refused. Mapped to HTTP in `crate::error`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    #[error(
        "an event type is 1 to 64 characters: a lowercase letter, then lowercase letters, \
         digits, _ . or -; got {}",
        super::quoted_input(.0)
    )]
    MalformedType(String),
    #[error(
        "unknown event type {}; valid types: {}",
        super::quoted_input(given),
        valid.join(", ")
    )]
    UnknownType { given: String, valid: Vec<String> },
    #[error("{0}")]
    InvalidPayload(String),
    #[error("{field} must be 1 to 128 letters, digits or _ . : @ -")]
    InvalidIdentifier { field: &'static str },
    /// An event's `task_id` that no task can have (a task's id is stricter
    /// than a project's or a user's).
    #[error("task_id: a task id is 1 to 128 letters, digits, _ or -")]
    InvalidTaskId,
    #[error(
        "Last-Event-ID (or ?last_event_id) must be a decimal integer from 0 to 9223372036854775807"
    )]
    InvalidEventId,
}

/// The published `data`, validated against its type's payload rules.
#[derive(Debug, Clone, PartialEq)]
pub struct EventData(Value);

impl EventData {
    /// Typed payloads: `progress_update`/`progress` need `progress` in 0–100,
    /// `text` and `reasoning` need a string `delta`. Other types take any JSON value.
    pub fn validate(event_type: &EventType, data: Value) -> Result<Self, EventError> {
        match event_type.as_str() {
            "progress_update" | "progress" => {
                let progress = data.get("progress").and_then(Value::as_f64);
                match progress {
                    Some(p) if (0.0..=100.0).contains(&p) => {}
                    Some(_) => {
                        return Err(EventError::InvalidPayload(format!(
                            "{event_type} needs data.progress between 0 and 100"
                        )));
                    }
                    None => {
                        return Err(EventError::InvalidPayload(format!(
                            "{event_type} needs data.progress as a number between 0 and 100"
                        )));
                    }
                }
            }
            "text" | "reasoning" if !data.get("delta").is_some_and(Value::is_string) => {
                return Err(EventError::InvalidPayload(format!(
                    "{event_type} needs data.delta as a string"
                )));
            }
            _ => {}
        }
        Ok(Self(data))
    }

    /// Wraps data produced by the broker itself (already well formed).
    pub fn trusted(data: Value) -> Self {
        Self(data)
    }

    pub fn as_value(&self) -> &Value {
        &self.0
    }

    pub fn into_value(self) -> Value {
        self.0
    }
}

/// An event accepted from a publisher, not yet stored.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: EventType,
    pub data: EventData,
    pub project_id: Option<ProjectId>,
    pub user_id: Option<UserId>,
    pub task_id: Option<TaskRef>,
    pub persist: bool,
    pub idempotency_key: Option<IdempotencyKey>,
    /// Publish time, ms since the epoch: the start of publish→deliver latency.
    pub published_at_ms: i64,
    /// The publishing span's W3C `traceparent`, so delivery and replay on
    /// any instance join the publisher's trace.
    pub trace_context: Option<TraceParent>,
    /// A `text` event's last producer `seq`, stored with it (never sent).
    pub seq: Option<u64>,
}

/// An event as delivered: stored ones have an `id`, `persist: false` ones do not.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub id: Option<EventId>,
    pub event_type: EventType,
    pub data: Value,
    pub project_id: Option<ProjectId>,
    pub user_id: Option<UserId>,
    pub task_id: Option<TaskRef>,
    /// Publish time, ms since the epoch.
    pub created_at_ms: i64,
    #[serde(skip)]
    pub trace_context: Option<TraceParent>,
}

/// A stored event as plain strings (a store row, a message between
/// instances), before its identifiers are parsed again.
pub struct RawEvent<'a> {
    pub id: Option<i64>,
    pub event_type: &'a str,
    pub data: Value,
    pub project_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub task_id: Option<&'a str>,
    pub created_at_ms: i64,
    pub trace_context: Option<&'a str>,
}

impl StoredEvent {
    /// Rebuilds an event from plain strings; `None` if one no longer parses
    /// (edited by hand, or sent by an incompatible version).
    pub fn from_raw(raw: RawEvent<'_>) -> Option<Self> {
        Some(Self {
            id: raw.id.map(EventId),
            event_type: EventType::parse(raw.event_type).ok()?,
            data: raw.data,
            project_id: raw.project_id.map(ProjectId::parse).transpose().ok()?,
            user_id: raw.user_id.map(UserId::parse).transpose().ok()?,
            task_id: raw.task_id.map(TaskRef::parse).transpose().ok()?,
            created_at_ms: raw.created_at_ms,
            // A malformed context loses the trace link, not the event.
            trace_context: raw.trace_context.and_then(TraceParent::parse),
        })
    }

    /// A task's last event: `complete`, or `error` (failed, cancelled).
    pub fn ends_task(&self) -> bool {
        self.task_id.is_some() && TASK_END_TYPES.contains(&self.event_type.as_str())
    }

    pub fn from_new(event: NewEvent, id: Option<EventId>) -> Self {
        Self {
            id,
            event_type: event.event_type,
            data: event.data.into_value(),
            project_id: event.project_id,
            user_id: event.user_id,
            task_id: event.task_id,
            created_at_ms: event.published_at_ms,
            trace_context: event.trace_context,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn progress_payload_must_be_a_number_in_range() {
        let t = EventType::parse("progress_update").unwrap();
        assert!(EventData::validate(&t, json!({"progress": 0})).is_ok());
        assert!(EventData::validate(&t, json!({"progress": 100.0})).is_ok());
        assert!(EventData::validate(&t, json!({"progress": 101})).is_err());
        assert!(EventData::validate(&t, json!({"progress": "50"})).is_err());
        assert!(EventData::validate(&t, json!({})).is_err());
    }

    #[test]
    fn text_payload_needs_a_string_delta() {
        let t = EventType::parse("text").unwrap();
        assert!(EventData::validate(&t, json!({"delta": "hi"})).is_ok());
        assert!(EventData::validate(&t, json!({"delta": 1})).is_err());
    }
}
