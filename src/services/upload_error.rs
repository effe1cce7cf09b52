//! How an upload can end other than with `200` (a body that cannot be
//! read, a refused line, ...), and the name its metrics and logs give each
//! ending.

use std::time::Duration;

use super::{tasks::TaskWriteError, upload_memory::UploadMemoryFull};
use crate::domain::{TaskError, TaskStatus};

/// Why the body's next instruction cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("line {line} is longer than {limit} bytes")]
    LineTooLong { line: u64, limit: usize },
    /// An SSE event whose `data` lines, joined, pass the limit (at line
    /// `line`): the event is held whole until its blank line.
    #[error("line {line}: the event's data is longer than {limit} bytes")]
    EventTooLong { line: u64, limit: usize },
    /// A tool call's input, gathered from its provider's pieces (no one of
    /// them long), past the longest a line may be.
    #[error(
        "line {line}: tool call {id:?}'s input, gathered from its pieces, is longer than {limit} \
         bytes (--max-upload-line-bytes)"
    )]
    ToolInputTooLong { line: u64, id: String, limit: usize },
    /// An event-stream body that is JSON (read whole) past the limit.
    #[error("the body is JSON, not an event stream, and longer than {limit} bytes")]
    JsonTooLong { limit: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A line that does not parse, or is too long.
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the upload sent nothing for {} s", .0.as_secs())]
    Idle(Duration),
    #[error("the upload's body could not be read")]
    Body,
    /// The task refused what a line asked (a progress out of range or
    /// going backwards, a write after the task finished).
    #[error("line {line}: {error}")]
    Line { line: u64, error: TaskError },
    #[error("a newer upload to this task took over; this one stopped")]
    Superseded,
    /// The instance began its drain: what came before this answer is
    /// applied; the rest goes to another instance, with its `seq`.
    #[error(
        "the broker is shutting down; the lines before this answer are applied: send the rest to another instance, numbered with seq"
    )]
    ShuttingDown,
    /// The uploads' memory budget could not cover this upload's unfinished
    /// line: what came before it is applied.
    #[error(transparent)]
    MemoryFull(#[from] UploadMemoryFull),
    #[error(transparent)]
    Task(#[from] TaskWriteError),
}

/// `error` from applying line `line`: named by it when it is about what the
/// line asked, not about the task or the store.
pub(super) fn at_line(line: u64, error: TaskWriteError) -> UploadError {
    match error {
        TaskWriteError::Task(error) if error != TaskError::Cancelled => {
            UploadError::Line { line, error }
        }
        other => UploadError::Task(other),
    }
}

/// How an upload ended, as its metrics and logs name it (each name starts
/// at 0 in the metrics: `telemetry::metrics::zeros`).
/// `ended`: the task's status after an upload answered `200`.
pub(super) fn outcome(ended: Result<TaskStatus, &UploadError>) -> &'static str {
    match ended {
        Ok(status) => match status {
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            _ => "left_running",
        },
        Err(UploadError::Read(ReadError::Malformed { .. })) => "malformed",
        Err(UploadError::Read(
            ReadError::LineTooLong { .. }
            | ReadError::EventTooLong { .. }
            | ReadError::ToolInputTooLong { .. }
            | ReadError::JsonTooLong { .. },
        )) => "line_too_long",
        Err(UploadError::MemoryFull(_)) => "memory_full",
        Err(UploadError::Idle(_)) => "idle",
        Err(UploadError::Body) => "aborted",
        Err(UploadError::Superseded) => "superseded",
        Err(UploadError::ShuttingDown) => "shutting_down",
        Err(UploadError::Line {
            error: TaskError::Finished(_),
            ..
        }) => "refused",
        Err(UploadError::Line { .. }) => "invalid_line",
        Err(UploadError::Task(TaskWriteError::Task(TaskError::Cancelled))) => "cancelled",
        Err(UploadError::Task(TaskWriteError::NotFound)) => "not_found",
        Err(UploadError::Task(TaskWriteError::Task(_))) => "refused",
        Err(UploadError::Task(_)) => "unavailable",
    }
}
