//! One upload per generation (`POST /tasks/{id}/stream`): the body is read
//! as it arrives and each line applied at once, so viewers see tokens live,
//! not when the upload ends.
//!
//! What has arrived of the body goes to the task as one write. Text that
//! comes within `--text-coalesce-ms` of the last write's start is queued to
//! the task at once but held there until the window ends, with what comes
//! meanwhile: one `text` event, and nothing written to the task later (a
//! cancel, a fail, the drain) overtakes it (see `upload_held`).
//! A cancel while the producer is between chunks ends the upload
//! at once (409), so it stops paying for tokens, and so does the task
//! ending any other way (completed or failed by another call, failed by the
//! orphan timeout); a line that does not parse
//! or that the task refuses ends it naming the line, the lines before it
//! staying applied; a body that ends without a terminal line leaves the
//! task running. A task has one upload at a time on an instance: a newer
//! one (a producer's retry) takes over, and the older ends at once (409
//! `upload_superseded`), so two bodies never interleave their text. A
//! producer whose connection breaks has its whole lines applied, not the
//! one it was cut off in. Under `?ends=step` a provider's end marker ends
//! one step of an agent's answer (a `step_end` event) instead of the task.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tracing::Instrument as _;

use super::{
    generation_input::{Instruction, UploadEnds, UploadFormat},
    tasks::{Delta, TaskService, TaskWriteError},
    upload_body::{BodyState, with_ready_chunks},
    upload_counts::{counted_change, counted_tool},
    upload_error::{at_line, outcome},
    upload_held::{HeldText, sleep_until_some},
    upload_memory::UploadMemoryFull,
    upload_pulse::Pulse,
    upload_reader::Reader,
    upload_stop::stopped,
};
pub use super::{
    upload_counts::Counted,
    upload_error::{ReadError, UploadError},
};
use crate::{
    auth::Principal,
    domain::{AnswerEnd, FinishReason, Task, TaskChange, TaskError, TaskId, TaskStatus, UserId},
};

/// What an upload did.
#[derive(Debug)]
pub struct UploadSummary {
    pub task: Task,
    /// What its writes accepted.
    pub counts: Counted,
    /// What the body was read as (see `Reader::read_as`).
    pub read_as: &'static str,
}

/// Bounds of one upload.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// The longest line (NDJSON) or event line (SSE), in bytes.
    pub max_line_bytes: usize,
    /// The longest a producer may send nothing.
    pub idle: Duration,
}

impl TaskService {
    /// Applies an upload to a task `principal` may see, in a task of its
    /// own: a producer that disconnects makes actix drop the request's
    /// handler, and the whole lines it had sent must still be applied (they
    /// are in the body's buffer) and the upload's end recorded.
    pub async fn ingest<S, E>(
        &self,
        principal: &Principal,
        task_id: &TaskId,
        format: UploadFormat,
        ends: UploadEnds,
        body: S,
        limits: UploadLimits,
    ) -> Result<UploadSummary, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + 'static,
        E: 'static,
    {
        let (service, principal, task_id) = (self.clone(), principal.clone(), task_id.clone());
        let upload = async move {
            service
                .ingest_here(&principal, &task_id, format, ends, body, limits)
                .await
        };
        match actix_rt::spawn(upload.in_current_span()).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is stopping under it.
            Err(_) => Err(UploadError::ShuttingDown),
        }
    }

    #[tracing::instrument(
        name = "task.upload",
        skip_all,
        fields(task_id = %task_id, format = format.label(), ends = ?ends, read_as, deltas, chars, reasoning_chars, tool_calls, tool_results, parts, step_ends, message_metadata, outcome, finish_reason)
    )]
    async fn ingest_here<S, E>(
        &self,
        principal: &Principal,
        task_id: &TaskId,
        format: UploadFormat,
        ends: UploadEnds,
        body: S,
        limits: UploadLimits,
    ) -> Result<UploadSummary, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        self.metrics.record_upload(format.label(), None);
        let mut reader = Reader::new(format, limits.max_line_bytes, ends);
        let result = self
            .apply_upload(principal, task_id, &mut reader, body, limits)
            .await;
        let outcome = outcome(result.as_ref().map(|summary| summary.task.status));
        self.metrics.record_upload(format.label(), Some(outcome));
        let read_as = reader.read_as();
        let span = tracing::Span::current();
        span.record("outcome", outcome);
        span.record("read_as", read_as);
        match &result {
            Ok(summary) => {
                // Why the answer stopped, as the task's result says it.
                let finish_reason = summary
                    .task
                    .result
                    .as_ref()
                    .and_then(|result| AnswerEnd::in_result(result).reason)
                    .map(FinishReason::label);
                if let Some(reason) = finish_reason {
                    span.record("finish_reason", reason);
                }
                tracing::info!(
                    task_id = %task_id,
                    deltas = summary.counts.deltas,
                    chars = summary.counts.chars,
                    reasoning_chars = summary.counts.reasoning_chars,
                    tool_calls = summary.counts.tool_calls,
                    tool_results = summary.counts.tool_results,
                    parts = summary.counts.parts,
                    step_ends = summary.counts.step_ends,
                    message_metadata = summary.counts.message_metadata,
                    read_as,
                    outcome,
                    finish_reason,
                    "upload ended"
                );
            }
            Err(error) => {
                tracing::info!(task_id = %task_id, outcome, read_as, %error, "upload ended");
            }
        }
        result
    }

    async fn apply_upload<S, E>(
        &self,
        principal: &Principal,
        task_id: &TaskId,
        reader: &mut Reader,
        mut body: S,
        limits: UploadLimits,
    ) -> Result<UploadSummary, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let task = self.writable(principal, task_id).await?;
        // A task already over refuses the upload at once, its body unread,
        // as any write to it is refused: named by no line, whichever came
        // first of the body's first line and the task's end watch.
        match task.status {
            TaskStatus::Cancelled => return Err(TaskWriteError::Task(TaskError::Cancelled).into()),
            ended @ (TaskStatus::Completed | TaskStatus::Failed) => {
                return Err(TaskWriteError::Task(TaskError::Finished(ended)).into());
            }
            TaskStatus::Pending | TaskStatus::Running => {}
        }
        reader.skip_seq_through(task.last_seq);
        let task_id = task.task_id;
        let mut upload = self.open_upload(&task_id).await;
        let mut memory = self.upload_memory.hold(principal.owner());
        let mut counted = Counted::default();
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
        // Text queued within the current window, held until it ends.
        let mut held = HeldText::default();
        let mut pulse = Pulse::new(self.upload_keep_alive());
        loop {
            let waiting_since = tokio::time::Instant::now();
            let next = loop {
                tokio::select! {
                    next = body.next() => break next,
                    stop = &mut stop => {
                        // What was queued comes before what stopped it:
                        // settled, so the answer follows what it applied.
                        let settled = held.settle().await;
                        counted += settled.unwrap_or_default();
                        return Err(stop);
                    }
                    () = sleep_until_some(window_end), if !held.is_empty() => {
                        // The window is over: what it gathered is one write.
                        counted += held.release(self, &task_id).await?;
                        window_end = Some(tokio::time::Instant::now() + self.text_coalesce());
                    }
                    () = &mut idle => {
                        let due = waiting_since + limits.idle;
                        if tokio::time::Instant::now() >= due {
                            return Err(UploadError::Idle(limits.idle));
                        }
                        idle.as_mut().reset(due);
                    }
                }
            };
            // A break on its own still owes what the lines before it left
            // (half a character, the end a provider said before its marker).
            let (first, without_chunk) = match next {
                None => (None, BodyState::Ended),
                Some(Err(_)) => (None, BodyState::Broken),
                Some(Ok(chunk)) => (Some(chunk), BodyState::Open),
            };
            let (chunk, state) = match first {
                None => (Bytes::new(), without_chunk),
                Some(chunk) => with_ready_chunks(chunk, &mut body),
            };
            // A broken body's last line may be cut short: only its whole
            // lines are applied, as for a body still open.
            let last = state == BodyState::Ended;
            let (mut instructions, malformed) = reader.read(&chunk, last);
            if state == BodyState::Broken {
                instructions.extend(reader.left_over());
            }
            // Checked once what was read is applied: the lines before the
            // one that cannot be held are kept, as for a malformed one.
            let budget = memory.cover(reader.held_bytes());
            // One clock read per read of the body, for the pulse and the window.
            let now = tokio::time::Instant::now();
            if pulse.due(now, chunk.len(), &instructions, !held.is_empty()) {
                self.change(&task_id, TaskChange::KeepAlive).await?;
                tracing::debug!(task_id = %task_id, "upload kept its task alive");
            }
            // Text only, within the window the last write opened: queued
            // now, held until the window ends with what comes meanwhile (one
            // event), and from now on ahead of anything written to the task
            // after it. A producer slower than the window is never held.
            if let Some(end) = window_end.filter(|end| *end > now)
                && state == BodyState::Open
                && malformed.is_none()
                && budget.is_ok()
                && instructions
                    .iter()
                    .all(|(_, i)| matches!(i, Instruction::Delta(_) | Instruction::Nothing))
            {
                let mut lines = instructions.into_iter().filter_map(|(line, i)| match i {
                    Instruction::Delta(delta) => Some((line, delta)),
                    _ => None,
                });
                if let Some((line, delta)) = lines.next() {
                    let deltas = std::iter::once(delta)
                        .chain(lines.map(|(_, d)| d))
                        .collect();
                    // The upload releases it at `end`; the later limit
                    // only frees it should the upload vanish first.
                    let limit = (end + self.text_coalesce()).into_std();
                    held.push(line, self.queue_text(&task_id, deltas, limit));
                }
                continue;
            }
            // Anything else goes as it comes: its first write behind what
            // was held takes that along (text: as one event).
            window_end = Some(tokio::time::Instant::now() + self.text_coalesce());
            let mut text = Vec::new();
            // The line of the first delta `text` holds: a refused write of
            // them is named by it.
            let mut text_from = 0;
            for (line, instruction) in instructions {
                match instruction {
                    Instruction::Delta(delta) => {
                        if text.is_empty() {
                            text_from = line;
                        }
                        text.push(delta);
                    }
                    // Includes what a stream that already ended its task
                    // says of its end again (see `upload_steps`).
                    Instruction::Nothing => {}
                    change => {
                        let written = self
                            .append_counted(&task_id, std::mem::take(&mut text))
                            .await
                            .map_err(|error| at_line(text_from, error));
                        counted += held.before(self, &task_id, written).await?;
                        if change.ends_task() {
                            ended.store(true, Ordering::Relaxed);
                        }
                        let tool = counted_tool(&change);
                        let (of_change, part) = counted_change(&change);
                        let changed = self
                            .change(&task_id, change.into_change())
                            .await
                            .map(|_| Counted::default())
                            .map_err(|error| at_line(line, error));
                        counted += held.before(self, &task_id, changed).await?;
                        if let Some(tool) = tool {
                            self.metrics.record_tool_event(tool);
                            counted += Counted::of_tool(tool);
                        }
                        if let Some(kind) = part {
                            self.metrics.record_answer_part(kind);
                        }
                        counted += of_change;
                    }
                }
            }
            let written = self
                .append_counted(&task_id, text)
                .await
                .map_err(|error| at_line(text_from, error));
            counted += held.before(self, &task_id, written).await?;
            if let Some(error) = malformed {
                return Err(error.into());
            }
            if let Err(full) = budget {
                let spent = match full {
                    UploadMemoryFull::Budget { .. } => "the uploads' memory budget is spent",
                    UploadMemoryFull::OwnerShare { .. } => {
                        "its producer holds half the uploads' memory budget"
                    }
                };
                tracing::warn!(
                    task_id = %task_id,
                    user_id = principal.owner().as_ref().map(UserId::as_str),
                    held_bytes = reader.held_bytes(),
                    uploads_held_bytes = self.upload_memory.held(),
                    "upload refused: {spent}"
                );
                return Err(full.into());
            }
            if state == BodyState::Broken {
                return Err(UploadError::Body);
            }
            if last {
                break;
            }
        }
        counted.record_in(&tracing::Span::current());
        Ok(UploadSummary {
            task: self.get(&task_id).await?,
            counts: counted,
            read_as: reader.read_as(),
        })
    }

    /// Appends `deltas` unless there are none; answers how many were new,
    /// and the characters they carried.
    async fn append_counted(
        &self,
        task_id: &TaskId,
        deltas: Vec<Delta>,
    ) -> Result<Counted, TaskWriteError> {
        if deltas.is_empty() {
            return Ok(Counted::default());
        }
        Ok(Counted::of_text(&self.append(task_id, deltas).await?))
    }
}
