//! Tasks: long-running work (an AI generation, a job) whose progress and
//! text stream to browsers. The rules of a task's life live here: ids,
//! statuses, which transitions are allowed, and progress that only moves
//! forward unless the producer insists.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

pub use super::task_ids::{ChatId, MessageId, TaskId};
use super::{
    AnswerPart, MESSAGE_METADATA_EVENT_TYPE, PartEndSaid, ProjectId, STEP_END_EVENT_TYPE, TextKind,
    ToolEvent,
};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    #[error("a task id is 1 to 128 letters, digits, _ or -")]
    InvalidId,
    #[error("a chat_id is 1 to 128 letters, digits, _ or -")]
    InvalidChatId,
    #[error("a message_id is 1 to 128 letters, digits, _ or -")]
    InvalidMessageId,
    #[error("task_type must be 1 to 64 lowercase letters, digits or _ . -")]
    InvalidType,
    #[error("progress must be a number between 0 and 100")]
    InvalidProgress,
    #[error("progress may not go backwards ({from} -> {to}); send \"force\": true to reset it")]
    ProgressBackwards { from: f64, to: f64 },
    #[error(
        "status must be pending, running, completed, failed or cancelled; got {}",
        super::quoted_input(.0)
    )]
    UnknownStatus(String),
    #[error("a {from} task cannot go back to pending")]
    BackToPending { from: TaskStatus },
    #[error("{field} may not contain the NUL character (U+0000)")]
    NulInText { field: &'static str },
    #[error("the task was cancelled; stop producing")]
    Cancelled,
    #[error("the task is already {0}; it accepts no more writes")]
    Finished(TaskStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub fn parse(raw: &str) -> Result<Self, TaskError> {
        match raw {
            "pending" => Ok(Self::Pending),
            "running" => Ok(Self::Running),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(TaskError::UnknownStatus(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub task_id: TaskId,
    pub status: TaskStatus,
    pub progress: f64,
    pub stage: Option<String>,
    pub message: Option<String>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub project_id: Option<ProjectId>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// What kind of work this is (e.g. `chat`, `summary`); labels metrics.
    pub task_type: Option<String>,
    /// When the producer wrote its first and its latest text.
    pub first_token_at_ms: Option<i64>,
    pub last_token_at_ms: Option<i64>,
    /// The conversation this generation belongs to.
    pub chat_id: Option<ChatId>,
    /// The id of the assistant message the generation writes, when the
    /// producer named one: a turn that continues a message (after a tool
    /// approval, say) names that message. `None`: the task id.
    pub message_id: Option<MessageId>,
    /// The highest producer sequence number accepted with a delta: a delta
    /// at or below it is a retry and is ignored.
    pub last_seq: Option<u64>,
}

/// Refuses a NUL in a task's own text (`stage`, `message`, `error`): its
/// row keeps them as text columns, and PostgreSQL's text cannot hold one,
/// so one store would keep what the other fails on. Event payloads (text
/// deltas, results) are JSON, where it travels escaped.
pub fn check_task_text(field: &'static str, value: Option<&str>) -> Result<(), TaskError> {
    match value {
        Some(value) if value.contains('\0') => Err(TaskError::NulInText { field }),
        _ => Ok(()),
    }
}

/// Parses a task type: `[a-z0-9_.-]{1,64}` (a metric label, so bounded).
pub fn parse_task_type(raw: &str) -> Result<String, TaskError> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(TaskError::InvalidType)
    }
}

/// What a producer asks of a task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskChange {
    /// `PATCH`: any of status, progress, stage, message.
    Update {
        status: Option<TaskStatus>,
        progress: Option<f64>,
        stage: Option<String>,
        message: Option<String>,
        /// Allows progress to go backwards (a new phase, a retry).
        force: bool,
    },
    /// Text was produced: a pending task starts running.
    Text,
    Complete {
        result: Option<Value>,
    },
    Fail {
        error: String,
    },
    Cancel,
    /// The model asked for a tool, or a tool answered: a pending task
    /// starts running.
    Tool(ToolEvent),
    /// A source the answer cites, a file it made, or an app's data part:
    /// a pending task starts running.
    Part(AnswerPart),
    /// A part of the answer's text, or of its reasoning, ended where more
    /// of the same kind follows as a part of its own (see
    /// [`TextKind::end_event_type`]).
    /// With what the model's provider said of the part (`providerMetadata`)
    /// and the sources its text cites.
    TextEnd(TextKind, Option<PartEndSaid>),
    /// The producer is still there: its upload is open and sending, with
    /// nothing a task keeps (a provider's pings while its model searches or
    /// thinks). Only the row's `updated_at` moves, so the TaskReaper does
    /// not take the task for orphaned; no event.
    KeepAlive,
    /// One step of a multi-step answer ended (one model call of an agent's
    /// loop): the answer goes on. `result`: the step's end as a
    /// completion's result says it (why it stopped, the tokens it took).
    StepEnd {
        result: Option<Value>,
    },
    /// The app's own metadata of the message the answer is, where it
    /// changes what the message's metadata merges to (see
    /// `domain::message_metadata`): a pending task starts running.
    MessageMetadata(Map<String, Value>),
}

impl Task {
    /// The event types of a task's stream. Each one changes the task (its
    /// progress, its text, its end), so only the task API publishes them
    /// with a `task_id`: the task row and its stream never disagree.
    pub const STREAM_EVENT_TYPES: [&'static str; 17] = [
        "progress",
        "text",
        "reasoning",
        "text_end",
        "reasoning_end",
        "tool_call",
        "tool_approval",
        "tool_result",
        "source",
        "file",
        "data_part",
        "custom_part",
        "steering_message",
        STEP_END_EVENT_TYPE,
        MESSAGE_METADATA_EVENT_TYPE,
        "complete",
        "error",
    ];

    pub fn new(
        task_id: TaskId,
        stage: Option<String>,
        message: Option<String>,
        project_id: Option<ProjectId>,
        now_ms: i64,
    ) -> Self {
        Self {
            task_id,
            status: TaskStatus::Pending,
            progress: 0.0,
            stage,
            message,
            result: None,
            error: None,
            project_id,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            task_type: None,
            first_token_at_ms: None,
            last_token_at_ms: None,
            chat_id: None,
            message_id: None,
            last_seq: None,
        }
    }

    /// The task after `change`, or why the change is refused. A cancelled
    /// task refuses everything with [`TaskError::Cancelled`] so a producer
    /// can tell "stop" from "you are late".
    pub fn apply(&self, change: &TaskChange, now_ms: i64) -> Result<Task, TaskError> {
        match self.status {
            TaskStatus::Cancelled => return Err(TaskError::Cancelled),
            status if status.is_terminal() => return Err(TaskError::Finished(status)),
            _ => {}
        }
        let mut next = self.clone();
        next.updated_at_ms = now_ms;
        match change {
            TaskChange::Update {
                status,
                progress,
                stage,
                message,
                force,
            } => {
                if let Some(progress) = progress {
                    if !progress.is_finite() || !(0.0..=100.0).contains(progress) {
                        return Err(TaskError::InvalidProgress);
                    }
                    if *progress < self.progress && !force {
                        return Err(TaskError::ProgressBackwards {
                            from: self.progress,
                            to: *progress,
                        });
                    }
                    // `-0.0` is `0.0` (it compares equal), never shown as `-0.0`.
                    next.progress = if *progress == 0.0 { 0.0 } else { *progress };
                }
                if *status == Some(TaskStatus::Pending) && self.status != TaskStatus::Pending {
                    return Err(TaskError::BackToPending { from: self.status });
                }
                check_task_text("stage", stage.as_deref())?;
                check_task_text("message", message.as_deref())?;
                if let Some(stage) = stage {
                    next.stage = Some(stage.clone());
                }
                if let Some(message) = message {
                    next.message = Some(message.clone());
                }
                next.status = match status {
                    Some(status) => *status,
                    // Reporting progress means the work has started.
                    None if self.status == TaskStatus::Pending && progress.is_some() => {
                        TaskStatus::Running
                    }
                    None => self.status,
                };
                match next.status {
                    TaskStatus::Completed => next.progress = 100.0,
                    TaskStatus::Failed if next.error.is_none() => {
                        next.error = Some("failed".into())
                    }
                    TaskStatus::Cancelled => next.error = Some("cancelled".into()),
                    _ => {}
                }
            }
            TaskChange::Tool(_)
            | TaskChange::Part(_)
            | TaskChange::TextEnd(..)
            | TaskChange::StepEnd { .. }
            | TaskChange::MessageMetadata(_) => next.status = TaskStatus::Running,
            TaskChange::KeepAlive => {}
            TaskChange::Text => {
                next.status = TaskStatus::Running;
                next.first_token_at_ms.get_or_insert(now_ms);
                next.last_token_at_ms = Some(now_ms);
            }
            TaskChange::Complete { result } => {
                next.status = TaskStatus::Completed;
                next.progress = 100.0;
                next.result = result.clone();
            }
            TaskChange::Fail { error } => {
                check_task_text("error", Some(error))?;
                next.status = TaskStatus::Failed;
                next.error = Some(error.clone());
            }
            TaskChange::Cancel => {
                next.status = TaskStatus::Cancelled;
                next.error = Some("cancelled".into());
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task::new(TaskId::parse("t1").unwrap(), None, None, None, 0)
    }

    fn progress(p: f64, force: bool) -> TaskChange {
        TaskChange::Update {
            status: None,
            progress: Some(p),
            stage: None,
            message: None,
            force,
        }
    }

    #[test]
    fn task_ids_follow_the_contract_grammar() {
        assert!(TaskId::parse("abc_DEF-123").is_ok());
        for bad in ["", "a b", "a/b", "é", &"x".repeat(129)] {
            assert_eq!(TaskId::parse(bad), Err(TaskError::InvalidId), "{bad:?}");
        }
    }

    #[test]
    fn progress_starts_a_pending_task_and_never_goes_backwards_unless_forced() {
        let running = task().apply(&progress(40.0, false), 1).unwrap();
        assert_eq!(running.status, TaskStatus::Running);
        assert!(matches!(
            running.apply(&progress(10.0, false), 2),
            Err(TaskError::ProgressBackwards { .. })
        ));
        assert_eq!(
            running.apply(&progress(10.0, true), 2).unwrap().progress,
            10.0
        );
        assert_eq!(
            running.apply(&progress(101.0, false), 2),
            Err(TaskError::InvalidProgress)
        );
        let zero = task().apply(&progress(-0.0, false), 1).unwrap().progress;
        assert!(zero == 0.0 && zero.is_sign_positive(), "{zero}");
    }

    #[test]
    fn a_started_task_never_goes_back_to_pending() {
        let to = |status| TaskChange::Update {
            status: Some(status),
            progress: None,
            stage: None,
            message: None,
            force: true,
        };
        let pending = task().apply(&to(TaskStatus::Pending), 1).unwrap();
        assert_eq!(pending.status, TaskStatus::Pending);
        let running = pending.apply(&to(TaskStatus::Running), 2).unwrap();
        assert_eq!(
            running.apply(&to(TaskStatus::Pending), 3),
            Err(TaskError::BackToPending {
                from: TaskStatus::Running
            })
        );
    }

    #[test]
    fn a_nul_in_a_tasks_own_text_is_refused() {
        let update = TaskChange::Update {
            status: None,
            progress: None,
            stage: Some("a\0b".into()),
            message: None,
            force: false,
        };
        assert_eq!(
            task().apply(&update, 1),
            Err(TaskError::NulInText { field: "stage" })
        );
        let fail = TaskChange::Fail { error: "\0".into() };
        assert_eq!(
            task().apply(&fail, 1),
            Err(TaskError::NulInText { field: "error" })
        );
    }

    #[test]
    fn a_finished_task_accepts_no_more_writes() {
        let done = task()
            .apply(&TaskChange::Complete { result: None }, 1)
            .unwrap();
        assert_eq!(done.progress, 100.0);
        assert_eq!(
            done.apply(&TaskChange::Text, 2),
            Err(TaskError::Finished(TaskStatus::Completed))
        );
        let failed = task()
            .apply(&TaskChange::Fail { error: "x".into() }, 1)
            .unwrap();
        assert_eq!(
            failed.apply(&progress(50.0, false), 2),
            Err(TaskError::Finished(TaskStatus::Failed))
        );
    }

    #[test]
    fn a_cancelled_task_tells_the_producer_to_stop() {
        let cancelled = task().apply(&TaskChange::Cancel, 1).unwrap();
        assert_eq!(
            cancelled.apply(&TaskChange::Text, 2),
            Err(TaskError::Cancelled)
        );
        assert_eq!(
            cancelled.apply(&TaskChange::Cancel, 2),
            Err(TaskError::Cancelled)
        );
    }
}
