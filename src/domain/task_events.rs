//! What a task's changes look like on its stream: the task as JSON (the
//! API's answer and the `progress` event's data) and the events each change
//! emits.

use serde_json::{Value, json};

use super::{
    ChatId, EventData, EventType, MESSAGE_METADATA_EVENT_TYPE, MessageId, NewEvent, StoredEvent,
    Task, TaskChange, TaskStatus, now_ms,
};

/// The JSON of a task, as answered by the API and carried by `progress` events.
pub fn task_json(task: &Task) -> Value {
    json!({
        "task_id": task.task_id.as_str(),
        "status": task.status,
        "progress": task.progress,
        "stage": task.stage,
        "message": task.message,
        "result": task.result,
        "error": task.error,
        "project_id": task.project_id,
        "task_type": task.task_type,
        "chat_id": task.chat_id.as_ref().map(ChatId::as_str),
        "message_id": task.message_id.as_ref().map(MessageId::as_str),
        "created_at": super::rfc3339(task.created_at_ms),
        "updated_at": super::rfc3339(task.updated_at_ms),
    })
}

/// The event that ends one step of a multi-step answer (`{"task_id",
/// "result"}`): the answer goes on after it.
pub const STEP_END_EVENT_TYPE: &str = "step_end";

/// Whether a task stream's event of `event_type` keeps its place among the
/// runs of text when a catch-up rolls them up: a tool event, an answer's
/// source, file or data part, a step's end, or a text part's end, each
/// between the text before and after it (two parts' text never rolls up
/// into one).
pub fn keeps_its_place(event_type: &str) -> bool {
    event_type == STEP_END_EVENT_TYPE
        || TextKind::of_end_event_type(event_type).is_some()
        || super::is_tool_event_type(event_type)
        || super::is_answer_part_event_type(event_type)
}

/// One event of `task`'s stream.
pub fn task_event(task: &Task, event_type: &str, data: Value) -> NewEvent {
    NewEvent {
        event_type: EventType::parse(event_type).expect("task event types are well formed"),
        data: EventData::trusted(data),
        project_id: task.project_id.clone(),
        user_id: None,
        task_id: Some(task.task_id.as_ref_id()),
        persist: true,
        idempotency_key: None,
        published_at_ms: now_ms(),
        trace_context: None,
        seq: None,
    }
}

/// What a piece of a generation's text is: the answer, or the model's
/// reasoning (its thinking, before or between parts of the answer). Each
/// kind is its own event type, so a viewer shows them apart and never
/// mixes the thinking into the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TextKind {
    #[default]
    Answer,
    Reasoning,
}

impl TextKind {
    /// The kind that is not this one.
    pub fn other(self) -> Self {
        match self {
            Self::Answer => Self::Reasoning,
            Self::Reasoning => Self::Answer,
        }
    }

    /// The event type carrying text of this kind.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Answer => "text",
            Self::Reasoning => "reasoning",
        }
    }

    /// The kind of text an event of `event_type` carries, if any.
    pub fn of_event_type(event_type: &str) -> Option<Self> {
        match event_type {
            "text" => Some(Self::Answer),
            "reasoning" => Some(Self::Reasoning),
            _ => None,
        }
    }

    /// The event type ending a part of text of this kind: the text after
    /// it is a part of its own (a paragraph the producer's SDK wrote
    /// apart), not more of the one before.
    pub fn end_event_type(self) -> &'static str {
        match self {
            Self::Answer => "text_end",
            Self::Reasoning => "reasoning_end",
        }
    }

    /// The kind of text whose part an event of `event_type` ends, if any.
    pub fn of_end_event_type(event_type: &str) -> Option<Self> {
        match event_type {
            "text_end" => Some(Self::Answer),
            "reasoning_end" => Some(Self::Reasoning),
            _ => None,
        }
    }
}

/// The `progress` event saying a pending task now runs, when `after` is the
/// task that its first text, tool event or step made of one `before` it
/// was pending: a viewer following it live learns what a late one reads
/// off the task (`running`), not only the text.
pub fn started_event(before: TaskStatus, after: &Task) -> Option<NewEvent> {
    (before == TaskStatus::Pending && after.status == TaskStatus::Running)
        .then(|| task_event(after, "progress", task_json(after)))
}

/// The `text` (or `reasoning`) event carrying `delta`, stored with the
/// task's last producer `seq` (never sent), from which a restarted writer
/// recovers it.
pub fn text_event(task: &Task, kind: TextKind, delta: String) -> NewEvent {
    NewEvent {
        seq: task.last_seq,
        ..task_event(
            task,
            kind.event_type(),
            json!({ "task_id": task.task_id.as_str(), "delta": delta }),
        )
    }
}

/// The end of a finished task (`complete`, or `error` for a failure or a
/// cancel) as its row tells it, unstored and without an id: what a viewer
/// is sent when retention has removed the stored end, so its stream still
/// ends as a finished task's does.
pub fn end_of(task: &Task) -> Option<StoredEvent> {
    let change = match task.status {
        TaskStatus::Completed => TaskChange::Complete {
            result: task.result.clone(),
        },
        TaskStatus::Failed => TaskChange::Fail {
            error: task.error.clone().unwrap_or_default(),
        },
        TaskStatus::Cancelled => TaskChange::Cancel,
        TaskStatus::Pending | TaskStatus::Running => return None,
    };
    let end = change_events(task, &change).pop()?;
    Some(StoredEvent {
        created_at_ms: task.updated_at_ms,
        ..StoredEvent::from_new(end, None)
    })
}

/// The events a change (not text: see [`text_event`]) emits, given the task
/// after it.
pub fn change_events(task: &Task, change: &TaskChange) -> Vec<NewEvent> {
    let id = task.task_id.as_str();
    let cancelled = || {
        task_event(
            task,
            "error",
            json!({ "task_id": id, "status": "cancelled", "error": "cancelled", "cancelled": true }),
        )
    };
    match change {
        // A PATCH that finishes the task ends it like the dedicated
        // endpoints do, so watchers see `complete`/`error` and close.
        TaskChange::Update { .. } => {
            let mut events = vec![task_event(task, "progress", task_json(task))];
            match task.status {
                TaskStatus::Completed => events.push(task_event(
                    task,
                    "complete",
                    json!({ "task_id": id, "status": "completed", "result": task.result }),
                )),
                TaskStatus::Failed => events.push(task_event(
                    task,
                    "error",
                    json!({ "task_id": id, "status": "failed", "error": task.error }),
                )),
                TaskStatus::Cancelled => events.push(cancelled()),
                TaskStatus::Pending | TaskStatus::Running => {}
            }
            events
        }
        TaskChange::Text | TaskChange::KeepAlive => Vec::new(),
        TaskChange::Tool(tool) => vec![task_event(task, tool.event_type(), tool.data(id))],
        TaskChange::Part(part) => vec![task_event(task, part.event_type(), part.data_of(id))],
        TaskChange::TextEnd(kind, said) => {
            let mut data = json!({ "task_id": id });
            super::PartEndSaid::add_to(said.as_ref(), &mut data);
            vec![task_event(task, kind.end_event_type(), data)]
        }
        TaskChange::MessageMetadata(said) => vec![task_event(
            task,
            MESSAGE_METADATA_EVENT_TYPE,
            json!({ "task_id": id, "metadata": said }),
        )],
        TaskChange::StepEnd { result } => vec![task_event(
            task,
            STEP_END_EVENT_TYPE,
            json!({ "task_id": id, "result": result }),
        )],
        TaskChange::Complete { result } => vec![task_event(
            task,
            "complete",
            json!({ "task_id": id, "status": "completed", "result": result }),
        )],
        TaskChange::Fail { error } => vec![task_event(
            task,
            "error",
            json!({ "task_id": id, "status": "failed", "error": error }),
        )],
        TaskChange::Cancel => vec![cancelled()],
    }
}
