//! One upload per generation (`POST /tasks/{id}/stream`): the body is read
//! as it arrives and each line applied at once, so viewers see tokens live,
//! not when the upload ends.
//!
//! What has arrived of the body goes to the task as one write. The next
//! write waits until that one is stored and `--text-coalesce-ms` has passed
//! since it started: what the producer sends in the meantime is one write
//! and one `text` event, and a producer faster than that is slowed by TCP.
//! A cancel while the producer is between chunks ends the upload
//! at once (409), so it stops paying for tokens, and so does the task
//! ending any other way (completed or failed by another call, failed by the
//! orphan timeout); a line that does not parse
//! or that the task refuses ends it naming the line, the lines before it
//! staying applied; a body that ends without a terminal line leaves the
//! task running. A task has one upload at a time on an instance: a newer
//! one (a producer's retry) takes over, and the older ends at once (409
//! `upload_superseded`), so two bodies never interleave their text.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt};

pub use super::upload_reader::ReadError;
use super::{
    generation_input::{Instruction, UploadFormat},
    tasks::{Delta, TaskService, TaskWriteError, UploadWatch},
    upload_reader::Reader,
};
use crate::{
    auth::Principal,
    domain::{Task, TaskChange, TaskError, TaskId, TaskStatus},
    shutdown::ShutdownHandle,
};

/// What an upload did.
#[derive(Debug)]
pub struct UploadSummary {
    pub task: Task,
    /// Deltas accepted (a retried `seq` is not counted).
    pub deltas: u64,
    /// Characters of text those deltas carried.
    pub chars: u64,
}

/// Bounds of one upload.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// The longest line (NDJSON) or event line (SSE), in bytes.
    pub max_line_bytes: usize,
    /// The longest a producer may send nothing.
    pub idle: Duration,
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
    #[error(transparent)]
    Task(#[from] TaskWriteError),
}

/// `error` from applying line `line`: named by it when it is about what the
/// line asked, not about the task or the store.
fn at_line(line: u64, error: TaskWriteError) -> UploadError {
    match error {
        TaskWriteError::Task(error) if error != TaskError::Cancelled => {
            UploadError::Line { line, error }
        }
        other => UploadError::Task(other),
    }
}

impl TaskService {
    /// Applies an upload to a task `principal` may see.
    #[tracing::instrument(
        name = "task.upload",
        skip_all,
        fields(task_id = %task_id, format = format.label(), deltas, chars, outcome)
    )]
    pub async fn ingest<S, E>(
        &self,
        principal: &Principal,
        task_id: &TaskId,
        format: UploadFormat,
        body: S,
        limits: UploadLimits,
    ) -> Result<UploadSummary, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        self.metrics.record_upload(format.label(), None);
        let result = self
            .apply_upload(principal, task_id, format, body, limits)
            .await;
        let outcome = outcome(&result);
        self.metrics.record_upload(format.label(), Some(outcome));
        let span = tracing::Span::current();
        span.record("outcome", outcome);
        match &result {
            Ok(summary) => tracing::info!(
                task_id = %task_id,
                deltas = summary.deltas,
                chars = summary.chars,
                outcome,
                "upload ended"
            ),
            Err(error) => tracing::info!(task_id = %task_id, outcome, %error, "upload ended"),
        }
        result
    }

    async fn apply_upload<S, E>(
        &self,
        principal: &Principal,
        task_id: &TaskId,
        format: UploadFormat,
        mut body: S,
        limits: UploadLimits,
    ) -> Result<UploadSummary, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let task = self.visible(principal, task_id).await?;
        let task_id = task.task_id;
        let mut reader = Reader::new(format, limits.max_line_bytes);
        let mut upload = self.open_upload(&task_id).await;
        let (mut deltas, mut chars) = (0u64, 0u64);
        // This upload ended its task (a `complete` or `fail` line): set
        // before that line is written, so the watch below does not take the
        // task's end for someone else's.
        let ended = AtomicBool::new(false);
        // The end of the coalescing window the last write opened.
        let mut window_end: Option<tokio::time::Instant> = None;
        // One cancel watch and one idle timer for the whole upload, not a
        // new one per read: the timer is re-armed only when it goes off
        // while the producer is still within its idle allowance.
        let stop = stopped(&mut upload, &ended, &self.draining);
        tokio::pin!(stop);
        let idle = tokio::time::sleep(limits.idle);
        tokio::pin!(idle);
        loop {
            let waiting_since = tokio::time::Instant::now();
            let next = loop {
                tokio::select! {
                    next = body.next() => break next,
                    stop = &mut stop => return Err(stop),
                    () = &mut idle => {
                        let due = waiting_since + limits.idle;
                        if tokio::time::Instant::now() >= due {
                            return Err(UploadError::Idle(limits.idle));
                        }
                        idle.as_mut().reset(due);
                    }
                }
            };
            let first = match next {
                None => None,
                Some(Err(_)) => return Err(UploadError::Body),
                Some(Ok(chunk)) => Some(chunk),
            };
            // Deltas that came within the window wait out the rest of it,
            // and what the producer sends meanwhile joins them: one write.
            // A producer slower than the window pays no timer at all.
            if first.is_some()
                && let Some(end) = window_end
                && tokio::time::Instant::now() < end
            {
                tokio::select! {
                    () = tokio::time::sleep_until(end) => {}
                    stop = &mut stop => return Err(stop),
                }
            }
            let (chunk, last) = match first {
                None => (Bytes::new(), true),
                Some(chunk) => with_ready_chunks(chunk, &mut body)?,
            };
            let written_at = tokio::time::Instant::now();
            window_end = Some(written_at + self.text_coalesce());
            let (instructions, malformed) = reader.read(&chunk, last);
            let mut text = Vec::new();
            // The line of the first delta `text` holds: a refused write of
            // them is named by it.
            let mut text_from = 0;
            for (line, instruction) in instructions {
                match instruction {
                    Instruction::Delta { text: delta, seq } => {
                        if text.is_empty() {
                            text_from = line;
                        }
                        text.push(Delta { text: delta, seq });
                    }
                    Instruction::Nothing => {}
                    // A stream that already said it is done (AI SDK `finish`
                    // then `[DONE]`) has nothing more to complete.
                    Instruction::Complete { .. } if ended.load(Ordering::Relaxed) => {}
                    change => {
                        let (new, new_chars) = self
                            .append_counted(&task_id, std::mem::take(&mut text))
                            .await
                            .map_err(|error| at_line(text_from, error))?;
                        (deltas, chars) = (deltas + new, chars + new_chars);
                        if matches!(
                            change,
                            Instruction::Complete { .. } | Instruction::Fail { .. }
                        ) {
                            ended.store(true, Ordering::Relaxed);
                        }
                        self.change(&task_id, as_change(change))
                            .await
                            .map_err(|error| at_line(line, error))?;
                    }
                }
            }
            let (new, new_chars) = self
                .append_counted(&task_id, text)
                .await
                .map_err(|error| at_line(text_from, error))?;
            (deltas, chars) = (deltas + new, chars + new_chars);
            if let Some(error) = malformed {
                return Err(error.into());
            }
            if last {
                break;
            }
        }
        tracing::Span::current().record("deltas", deltas);
        tracing::Span::current().record("chars", chars);
        Ok(UploadSummary {
            task: self.get(&task_id).await?,
            deltas,
            chars,
        })
    }

    /// Appends `deltas` unless there are none; answers how many were new,
    /// and the characters they carried.
    async fn append_counted(
        &self,
        task_id: &TaskId,
        deltas: Vec<Delta>,
    ) -> Result<(u64, u64), TaskWriteError> {
        if deltas.is_empty() {
            return Ok((0, 0));
        }
        let written = self.append(task_id, deltas).await?;
        Ok((written.accepted as u64, written.chars as u64))
    }
}

/// Bytes of already-arrived body taken into one write.
const READY_BYTES: usize = 64 * 1024;

/// `first` and whatever more of the body has already arrived (up to
/// [`READY_BYTES`]), and whether the body ended there. A producer that got
/// ahead while the previous write was being stored (one token per TCP
/// segment, say) is caught up with one write of all it sent meanwhile, not
/// one write per segment.
fn with_ready_chunks<S, E>(first: Bytes, body: &mut S) -> Result<(Bytes, bool), UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut gathered: Option<BytesMut> = None;
    let mut last = false;
    while gathered.as_ref().map_or(first.len(), BytesMut::len) < READY_BYTES {
        match body.next().now_or_never() {
            Some(Some(Ok(more))) => gathered
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&more),
            Some(Some(Err(_))) => return Err(UploadError::Body),
            Some(None) => {
                last = true;
                break;
            }
            None => break,
        }
    }
    Ok((gathered.map_or(first, BytesMut::freeze), last))
}

/// How an upload ended, as its metrics and logs name it (each name starts
/// at 0 in the metrics: `telemetry::metrics::zeros`).
fn outcome(result: &Result<UploadSummary, UploadError>) -> &'static str {
    match result {
        Ok(summary) => match summary.task.status {
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            _ => "left_running",
        },
        Err(UploadError::Read(ReadError::Malformed { .. })) => "malformed",
        Err(UploadError::Read(ReadError::LineTooLong { .. } | ReadError::EventTooLong { .. })) => {
            "line_too_long"
        }
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

fn as_change(instruction: Instruction) -> TaskChange {
    match instruction {
        Instruction::Progress {
            progress,
            stage,
            message,
        } => TaskChange::Update {
            status: None,
            progress,
            stage,
            message,
            force: false,
        },
        Instruction::Complete { result } => TaskChange::Complete { result },
        Instruction::Fail { error } => TaskChange::Fail { error },
        Instruction::Delta { .. } | Instruction::Nothing => {
            unreachable!("text is appended, nothing is skipped")
        }
    }
}

/// Resolves once the task ends other than by this upload's own terminal
/// line (cancelled, or completed or failed elsewhere), a newer upload takes
/// over, or the instance begins its drain, with why.
async fn stopped(
    upload: &mut Option<UploadWatch>,
    ended_here: &AtomicBool,
    draining: &ShutdownHandle,
) -> UploadError {
    let Some(UploadWatch {
        status,
        current,
        claim,
    }) = upload
    else {
        draining.wait().await;
        return UploadError::ShuttingDown;
    };
    let claim = *claim;
    let ended_elsewhere = |status: &TaskStatus| {
        *status == TaskStatus::Cancelled
            || (status.is_terminal() && !ended_here.load(Ordering::Relaxed))
    };
    tokio::select! {
        Ok(status) = status.wait_for(ended_elsewhere) => match *status {
            TaskStatus::Cancelled => TaskWriteError::Task(TaskError::Cancelled).into(),
            ended => TaskWriteError::Task(TaskError::Finished(ended)).into(),
        },
        Ok(_) = current.wait_for(|upload| *upload != claim) => UploadError::Superseded,
        () = draining.wait() => UploadError::ShuttingDown,
        else => std::future::pending().await,
    }
}
