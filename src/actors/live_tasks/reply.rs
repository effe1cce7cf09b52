//! A write's answer: what its writer is told once its Persist is stored
//! (or refused), with the writer's own counts and the events its text
//! went into.

use std::sync::Arc;

use smallvec::SmallVec;
use tokio::sync::oneshot;

use super::TaskWriteError;
use crate::domain::{EventId, Task};

/// A write's answer: the task after it, and what was stored.
#[derive(Debug, Clone)]
pub struct TaskWritten {
    /// Shared with LiveTasks' own copy: most writers never look at it.
    pub task: Arc<Task>,
    /// The events this writer's text went into, in order: each one's id,
    /// beside the position among the writer's deltas of its first delta in
    /// it (empty when every delta was a retry, or for a change; one entry
    /// unless the writer sent the answer and the reasoning both).
    pub text_ids: SmallVec<[(usize, EventId); 1]>,
    /// The deltas of this writer's text write that were new (not retries).
    pub accepted: usize,
    /// The positions, among this writer's deltas, of the retries of a
    /// `seq` already accepted (in order; empty, and allocating nothing,
    /// when every delta was new, as nearly always).
    pub retried_at: Vec<usize>,
    /// The characters those deltas carried: of the answer, and of the
    /// reasoning.
    pub chars: usize,
    pub reasoning_chars: usize,
}

impl TaskWritten {
    /// What a writer is answered once its Persist is stored; its own
    /// counts are filled in by [`Reply::answer`].
    pub(super) fn stored(task: Arc<Task>) -> Self {
        Self {
            task,
            text_ids: SmallVec::new(),
            accepted: 0,
            retried_at: Vec::new(),
            chars: 0,
            reasoning_chars: 0,
        }
    }

    /// The id of the event the writer's delta at `position` went into:
    /// `None` for a retry. A delta with no text went into none: it answers
    /// the event the text around it went into.
    pub fn text_id_of(&self, position: usize) -> Option<EventId> {
        if self.retried_at.binary_search(&position).is_ok() {
            return None;
        }
        let after = self.text_ids.partition_point(|(from, _)| *from <= position);
        let (_, id) = self.text_ids.get(after.saturating_sub(1))?;
        Some(*id)
    }
}

pub(super) struct Reply {
    sender: oneshot::Sender<Result<TaskWritten, TaskWriteError>>,
    /// Set once the writer's deltas are sorted from retries.
    pub(super) accepted: usize,
    pub(super) retried_at: Vec<usize>,
    pub(super) chars: usize,
    pub(super) reasoning_chars: usize,
    /// Of the events the write stores, those this writer's text went
    /// into: the position of its first delta in each, and the event's
    /// (its place among them).
    placed: SmallVec<[(usize, usize); 1]>,
}

impl Reply {
    pub(super) fn new(sender: oneshot::Sender<Result<TaskWritten, TaskWriteError>>) -> Self {
        Self {
            sender,
            accepted: 0,
            retried_at: Vec::new(),
            chars: 0,
            reasoning_chars: 0,
            placed: SmallVec::new(),
        }
    }

    /// Notes that the writer's delta at `position` went into the write's
    /// event `event` (its place among the write's events).
    pub(super) fn placed_in(&mut self, position: usize, event: usize) {
        if self.placed.last().is_none_or(|(_, last)| *last != event) {
            self.placed.push((position, event));
        }
    }

    /// The write's events gained `by` events ahead of those this writer's
    /// text went into.
    pub(super) fn shift_placed(&mut self, by: usize) {
        for (_, event) in &mut self.placed {
            *event += by;
        }
    }

    /// Answers the writer once its write is stored, `ids` the ids of the
    /// write's events (`None` for a change, which stores no text).
    pub(super) fn answer_stored(mut self, task: Arc<Task>, ids: Option<&[Option<EventId>]>) {
        let placed = std::mem::take(&mut self.placed);
        let text_ids = ids
            .map(|ids| {
                placed
                    .into_iter()
                    .filter_map(|(from, event)| Some((from, ids.get(event).copied().flatten()?)))
                    .collect()
            })
            .unwrap_or_default();
        self.answer(Ok(TaskWritten {
            text_ids,
            ..TaskWritten::stored(task)
        }));
    }

    /// The same writer, its counts cleared, for its deltas to be offered again.
    pub(super) fn restarted(self) -> Self {
        Self::new(self.sender)
    }

    pub(super) fn answer(self, answer: Result<TaskWritten, TaskWriteError>) {
        let answer = answer.map(|written| TaskWritten {
            accepted: self.accepted,
            retried_at: self.retried_at,
            chars: self.chars,
            reasoning_chars: self.reasoning_chars,
            ..written
        });
        let _ = self.sender.send(answer);
    }
}
