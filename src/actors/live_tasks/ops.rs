//! The writes waiting for a task, and how the next of them become one
//! Persist: a change with its events and the task's row, or every text
//! delta queued back to back as one `text` event with the row or, between
//! the row's refreshes, a check of it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    LiveTask, TaskWriteError,
    reply::{Reply, TaskWritten},
};
use crate::{
    actors::persister::{KnownSeq, Persist, TaskWrite},
    domain::{
        Task, TaskChange, TaskError, TaskStatus, TextKind, change_events, now_ms, started_event,
        text_event,
    },
    telemetry::Metrics,
};

/// One piece of text from a producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub text: String,
    /// The producer's sequence number: a delta at or below the task's last
    /// accepted one is a retry and is ignored. One numbering for both kinds.
    pub seq: Option<u64>,
    pub kind: TextKind,
}

impl Delta {
    /// A piece of the answer.
    pub fn answer(text: impl Into<String>, seq: Option<u64>) -> Self {
        Self {
            text: text.into(),
            seq,
            kind: TextKind::Answer,
        }
    }

    /// A piece of the model's reasoning.
    pub fn reasoning(text: impl Into<String>, seq: Option<u64>) -> Self {
        Self {
            kind: TextKind::Reasoning,
            ..Self::answer(text, seq)
        }
    }
}

pub(super) enum Op {
    Change {
        change: TaskChange,
        reply: Reply,
    },
    Text {
        deltas: Vec<Delta>,
        reply: Reply,
        /// A streamed upload's coalescing window: alone at the front of
        /// the queue, the text waits until then (see `LiveTasks::pump`).
        hold_until: Option<Instant>,
    },
}

impl Op {
    /// An upload's text waiting out its coalescing window.
    pub(super) fn is_held(&self) -> bool {
        matches!(
            self,
            Self::Text {
                hold_until: Some(_),
                ..
            }
        )
    }

    pub(super) fn refuse(self, error: TaskWriteError) {
        match self {
            Self::Change { reply, .. } | Self::Text { reply, .. } => reply.answer(Err(error)),
        }
    }
}

/// The next Persist of a task, and who waits for it.
pub(super) struct Write {
    pub persist: Persist,
    pub awaiting: Awaiting,
}

/// What waits for a write's Persist to come back.
pub(super) struct Awaiting {
    pub replies: Vec<Reply>,
    /// The task as it will be once stored.
    pub task: Arc<Task>,
    /// When the write was made, if it writes the task's row.
    pub row_at: Option<Instant>,
    pub is_text: bool,
    /// What the writers asked, to be asked again of the reloaded task if
    /// the store finds the write stale (another instance rewrote the row
    /// or accepted later `seq`s meanwhile: nothing of it was stored).
    pub again: Again,
}

/// A stale write's request, as it is made again.
pub(super) enum Again {
    /// What each writer offered, in the order of the replies; the reloaded
    /// task tells new deltas from retries.
    Text(Vec<Vec<Delta>>),
    Change(TaskChange),
}

impl Again {
    /// The writes to queue again, one per reply.
    pub(super) fn ops(self, replies: Vec<Reply>) -> Vec<Op> {
        match self {
            Self::Text(offered) => replies
                .into_iter()
                .zip(offered)
                .map(|(reply, deltas)| Op::Text {
                    deltas,
                    reply: reply.restarted(),
                    hold_until: None,
                })
                .collect(),
            Self::Change(change) => replies
                .into_iter()
                .map(|reply| Op::Change {
                    change: change.clone(),
                    reply: reply.restarted(),
                })
                .collect(),
        }
    }
}

/// Why a write is refused by the task's state.
pub(super) fn refusal(status: TaskStatus) -> Option<TaskError> {
    match status {
        TaskStatus::Cancelled => Some(TaskError::Cancelled),
        status if status.is_terminal() => Some(TaskError::Finished(status)),
        _ => None,
    }
}

/// Takes the task's next writes off its queue: a change, or the run of
/// text writes at its front. Writes refused by the task's state, or whose
/// deltas were all retries, are answered here. `None` when nothing is left
/// to store.
pub(super) fn next_write(
    live: &mut LiveTask,
    metrics: &Metrics,
    row_refresh: Duration,
) -> Option<Write> {
    loop {
        match live.ops.pop_front()? {
            Op::Change { change, reply } => {
                // Strictly later than the last write, so the version always moves.
                let now = now_ms().max(live.task.updated_at_ms + 1);
                match live.task.apply(&change, now) {
                    Err(error) => reply.answer(Err(error.into())),
                    Ok(next) => {
                        let next = Arc::new(next);
                        // An update says the state itself; any other change
                        // that starts the task says it first.
                        let started = match change {
                            TaskChange::Update { .. } => None,
                            _ => started_event(live.task.status, &next),
                        };
                        let events = started
                            .into_iter()
                            .chain(change_events(&next, &change))
                            .collect();
                        return Some(Write {
                            persist: Persist {
                                events,
                                tasks: vec![TaskWrite {
                                    row_version: live.row_version,
                                    ..TaskWrite::with_row(next.clone())
                                }],
                            },
                            awaiting: Awaiting {
                                replies: vec![reply],
                                task: next,
                                row_at: Some(Instant::now()),
                                is_text: false,
                                again: Again::Change(change),
                            },
                        });
                    }
                }
            }
            Op::Text {
                deltas,
                reply,
                hold_until,
            } => {
                live.ops.push_front(Op::Text {
                    deltas,
                    reply,
                    hold_until,
                });
                if let Some(write) = text_write(live, metrics, row_refresh) {
                    return Some(write);
                }
            }
        }
    }
}

/// Every text write at the front of the queue, as one event per run of one
/// kind (`text`, or `reasoning`): nearly always one `text` event. The
/// task's row is written with it only when the task starts running or the
/// row was last written `row_refresh` ago or more: between, only the store's
/// check that the task is unfinished guards the event (a random page of the
/// tasks table rewritten per event cost 6–8 % of a token's CPU), and the
/// event carries the producer's `seq` itself (the row's catches up at the
/// next refresh; `EventStore::task_for_writing` takes the later of both).
fn text_write(live: &mut LiveTask, metrics: &Metrics, row_refresh: Duration) -> Option<Write> {
    let refused = refusal(live.task.status);
    let mut last_seq = live.task.last_seq;
    // Each run of one kind: its text and how many deltas made it.
    let mut runs: Vec<(TextKind, String, usize)> = Vec::new();
    // Per kind (the answer, the reasoning): deltas accepted, retried.
    let mut counted = [(0, 0); 2];
    let mut replies = Vec::new();
    let mut offered_deltas = Vec::new();
    let mut numbered = false;
    while let Some(Op::Text { .. }) = live.ops.front() {
        let Some(Op::Text {
            deltas, mut reply, ..
        }) = live.ops.pop_front()
        else {
            unreachable!("the front is a text write");
        };
        if let Some(error) = &refused {
            reply.answer(Err(error.clone().into()));
            continue;
        }
        for (at, delta) in deltas.iter().enumerate() {
            let count = &mut counted[usize::from(delta.kind == TextKind::Reasoning)];
            if let (Some(seq), Some(last)) = (delta.seq, last_seq)
                && seq <= last
            {
                reply.retried_at.push(at);
                count.1 += 1;
                continue;
            }
            count.0 += 1;
            numbered |= delta.seq.is_some();
            last_seq = delta.seq.or(last_seq);
            if !delta.text.is_empty() {
                match runs.last_mut() {
                    Some((kind, text, made_of)) if *kind == delta.kind => {
                        text.push_str(&delta.text);
                        *made_of += 1;
                    }
                    _ => runs.push((delta.kind, delta.text.clone(), 1)),
                }
                reply.placed_in(at, runs.len() - 1);
            }
            reply.accepted += 1;
            let chars = delta.text.chars().count();
            match delta.kind {
                TextKind::Answer => reply.chars += chars,
                TextKind::Reasoning => reply.reasoning_chars += chars,
            }
        }
        replies.push(reply);
        offered_deltas.push(deltas);
    }
    for (kind, (accepted, retried)) in [TextKind::Answer, TextKind::Reasoning]
        .into_iter()
        .zip(counted)
    {
        metrics.record_deltas(kind, accepted, retried);
    }
    if runs.is_empty() {
        Arc::make_mut(&mut live.task).last_seq = last_seq;
        for reply in replies {
            reply.answer(Ok(TaskWritten::stored(live.task.clone())));
        }
        return None;
    }
    let previous_token_at = live.task.last_token_at_ms;
    let mut task = live
        .task
        .apply(&TaskChange::Text, now_ms().max(live.task.updated_at_ms + 1))
        .expect("the task's state was checked above");
    task.last_seq = last_seq;
    record_token_timing(metrics, previous_token_at, &task);
    let task = Arc::new(task);
    let with_row = live.task.status != TaskStatus::Running
        || live
            .row_written
            .is_none_or(|at| at.elapsed() >= row_refresh);
    // The task's start before its first text, as a change's comes before
    // the change: a viewer never reads text of a task it holds pending.
    let started = started_event(live.task.status, &task);
    if started.is_some() {
        for reply in &mut replies {
            reply.shift_placed(1);
        }
    }
    let events = started
        .into_iter()
        .chain(runs.into_iter().map(|(kind, text, made_of)| {
            metrics.record_text_event(made_of);
            text_event(&task, kind, text)
        }))
        .collect();
    let mut guarded = if with_row {
        TaskWrite {
            row_version: live.row_version,
            ..TaskWrite::with_row(task.clone())
        }
    } else {
        TaskWrite::checked(task.clone())
    };
    if numbered {
        guarded.seq_known = Some(KnownSeq(live.task.last_seq));
    }
    Some(Write {
        persist: Persist {
            events,
            tasks: vec![guarded],
        },
        awaiting: Awaiting {
            replies,
            task,
            is_text: true,
            row_at: with_row.then(Instant::now),
            again: Again::Text(offered_deltas),
        },
    })
}

/// Time to first token (from creation) or the gap since the previous
/// token, labelled with the task's type.
fn record_token_timing(metrics: &Metrics, previous_token_at: Option<i64>, after: &Task) {
    let task_type = after.task_type.as_deref().unwrap_or("untyped");
    let now = after.last_token_at_ms.unwrap_or(after.updated_at_ms);
    match previous_token_at {
        None => metrics
            .record_time_to_first_token(task_type, (now - after.created_at_ms) as f64 / 1000.0),
        Some(previous) => metrics.record_token_gap(task_type, (now - previous) as f64 / 1000.0),
    }
}
