//! Row structs: what diesel reads and writes. They convert into domain types
//! and are never serialized to clients.

use diesel::prelude::*;

use super::schema::events;
use crate::domain::{
    ChatId, EventId, MessageId, NewEvent, ProjectId, RawEvent, StoredEvent, Task, TaskId,
    TaskStatus,
};

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub event_type: String,
    pub data: String,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub task_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub trace_context: Option<String>,
    pub created_at_ms: i64,
    pub seq: Option<i64>,
}

impl From<&NewEvent> for EventRow {
    fn from(event: &NewEvent) -> Self {
        Self {
            // Straight copies and `serde_json::to_string`, not `Display`:
            // formatting goes through `fmt::Write` a piece at a time, which
            // cost a text event's row ~4,000 instructions.
            event_type: event.event_type.as_str().to_owned(),
            data: json_text(event.data.as_value()),
            project_id: event.project_id.as_ref().map(|id| id.as_str().to_owned()),
            user_id: event.user_id.as_ref().map(|id| id.as_str().to_owned()),
            task_id: event.task_id.as_ref().map(|id| id.as_str().to_owned()),
            idempotency_key: event
                .idempotency_key
                .as_ref()
                .map(|key| key.as_str().to_owned()),
            trace_context: event.trace_context.as_ref().map(|t| t.as_str().to_owned()),
            created_at_ms: event.published_at_ms,
            seq: event.seq.and_then(|seq| i64::try_from(seq).ok()),
        }
    }
}

/// A JSON value's compact text.
fn json_text(value: &serde_json::Value) -> String {
    // A `Value` always serializes (its keys are strings, its numbers
    // finite); `Display` is the same text by a slower road.
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct StoredEventRow {
    pub id: i64,
    pub event_type: String,
    pub data: String,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub task_id: Option<String>,
    pub created_at_ms: i64,
    pub trace_context: Option<String>,
}

impl StoredEventRow {
    /// Rows were validated on the way in; one that no longer parses (edited
    /// by hand) is skipped rather than failing a whole replay.
    pub fn into_domain(self) -> Option<StoredEvent> {
        StoredEvent::from_raw(RawEvent {
            id: Some(self.id),
            event_type: &self.event_type,
            data: serde_json::from_str(&self.data).ok()?,
            project_id: self.project_id.as_deref(),
            user_id: self.user_id.as_deref(),
            task_id: self.task_id.as_deref(),
            created_at_ms: self.created_at_ms,
            trace_context: self.trace_context.as_deref(),
        })
    }
}

/// A page of rows read after an id: the events that decoded, and how far
/// the rows went (a row that did not decode still counts as read).
#[derive(Debug, Default)]
pub struct EventRows {
    pub events: Vec<StoredEvent>,
    /// Rows read, decoded or not: a page shorter than asked is the last.
    pub rows: usize,
    /// The id of the last row read.
    pub last_id: Option<EventId>,
    /// The rows' `data` as stored, in bytes: what the page weighs.
    pub data_bytes: usize,
}

impl From<Vec<StoredEventRow>> for EventRows {
    fn from(rows: Vec<StoredEventRow>) -> Self {
        Self {
            rows: rows.len(),
            data_bytes: rows.iter().map(|row| row.data.len()).sum(),
            last_id: rows.last().map(|row| EventId(row.id)),
            events: rows
                .into_iter()
                .filter_map(StoredEventRow::into_domain)
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable, AsChangeset)]
#[diesel(table_name = super::schema::tasks)]
#[diesel(treat_none_as_null = true)]
pub struct TaskRow {
    pub task_id: String,
    pub status: String,
    pub progress: f64,
    pub stage: Option<String>,
    pub message: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub project_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub task_type: Option<String>,
    pub first_token_at_ms: Option<i64>,
    pub last_token_at_ms: Option<i64>,
    pub chat_id: Option<String>,
    pub last_seq: Option<i64>,
    pub message_id: Option<String>,
}

impl From<&Task> for TaskRow {
    fn from(task: &Task) -> Self {
        Self {
            task_id: task.task_id.to_string(),
            status: task.status.as_str().to_owned(),
            progress: task.progress,
            stage: task.stage.clone(),
            message: task.message.clone(),
            result: task.result.as_ref().map(ToString::to_string),
            error: task.error.clone(),
            project_id: task.project_id.as_ref().map(ToString::to_string),
            created_at_ms: task.created_at_ms,
            updated_at_ms: task.updated_at_ms,
            task_type: task.task_type.clone(),
            first_token_at_ms: task.first_token_at_ms,
            last_token_at_ms: task.last_token_at_ms,
            chat_id: task.chat_id.as_ref().map(ToString::to_string),
            last_seq: task.last_seq.map(|seq| seq as i64),
            message_id: task.message_id.as_ref().map(ToString::to_string),
        }
    }
}

impl TaskRow {
    /// Whether the row says the task is still pending or running (what the
    /// store's conditional writes call unfinished).
    pub fn is_unfinished(&self) -> bool {
        TaskStatus::parse(&self.status).is_ok_and(|status| !status.is_terminal())
    }

    pub fn into_domain(self) -> Option<Task> {
        Some(Task {
            task_id: TaskId::parse(&self.task_id).ok()?,
            status: TaskStatus::parse(&self.status).ok()?,
            progress: self.progress,
            stage: self.stage,
            message: self.message,
            result: self
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            error: self.error,
            project_id: self
                .project_id
                .as_deref()
                .map(ProjectId::parse)
                .transpose()
                .ok()?,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            task_type: self.task_type,
            first_token_at_ms: self.first_token_at_ms,
            last_token_at_ms: self.last_token_at_ms,
            chat_id: self
                .chat_id
                .as_deref()
                .map(ChatId::parse)
                .transpose()
                .ok()?,
            last_seq: self.last_seq.and_then(|seq| u64::try_from(seq).ok()),
            message_id: self
                .message_id
                .as_deref()
                .map(MessageId::parse)
                .transpose()
                .ok()?,
        })
    }
}

/// A batch's rows, written from borrowed events and tasks while the caller
/// still holds them: the events are serialised once, never cloned.
pub struct BatchRows {
    pub(super) events: Vec<EventRow>,
    /// Rows to write, each with the `updated_at_ms` its writer expects to
    /// find (see `prepared::UpdateRunningTask`).
    pub(super) tasks: Vec<(TaskRow, Option<i64>)>,
    /// Tasks whose events are stored only if the task is still unfinished
    /// in the store, without writing its row.
    pub(super) checks: Vec<String>,
    /// Tasks written with numbered deltas, and the last `seq` their writer
    /// knew: stale if the store holds a later one.
    pub(super) seq_checks: Vec<SeqCheck>,
}

impl BatchRows {
    pub fn new<'a>(
        events: impl IntoIterator<Item = &'a NewEvent>,
        tasks: impl IntoIterator<Item = (&'a Task, Option<i64>)>,
        checks: impl IntoIterator<Item = &'a TaskId>,
        seq_checks: impl IntoIterator<Item = (&'a TaskId, Option<u64>)>,
    ) -> Self {
        Self {
            events: events.into_iter().map(EventRow::from).collect(),
            tasks: (tasks.into_iter())
                .map(|(task, version)| (TaskRow::from(task), version))
                .collect(),
            checks: checks.into_iter().map(ToString::to_string).collect(),
            seq_checks: seq_checks
                .into_iter()
                .map(|(task_id, known)| SeqCheck {
                    task_id: task_id.to_string(),
                    known: known.and_then(|seq| i64::try_from(seq).ok()),
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.tasks.is_empty()
    }

    /// Events in the batch.
    pub fn events(&self) -> usize {
        self.events.len()
    }
}

/// A task written with numbered deltas, and the last `seq` its writer knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqCheck {
    pub task_id: String,
    pub known: Option<i64>,
}

impl SeqCheck {
    /// Whether `stored`, the newest `seq` in the store, is one the writer
    /// did not know: its deltas may repeat text already stored.
    pub fn is_outdated_by(&self, stored: Option<i64>) -> bool {
        match (stored, self.known) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(stored), Some(known)) => stored > known,
        }
    }
}
