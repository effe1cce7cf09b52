//! The backend-independent half of an insert batch: which events repeat an
//! `idempotency_key` (within the batch or already stored), which are new,
//! and the outcome of each, in order. The backends only run the SQL.

use std::collections::HashMap;

use super::rows::EventRow;
use crate::domain::EventId;

/// What happened to one event of an insert batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored now under this id: deliver it.
    Inserted(EventId),
    /// Its `idempotency_key` was seen within the window: answer the first
    /// id, deliver nothing.
    Duplicate(EventId),
    /// Not stored: its task was finished meanwhile (by another instance),
    /// so the event would contradict the task's row.
    Skipped,
}

impl InsertOutcome {
    pub fn id(self) -> Option<EventId> {
        match self {
            Self::Inserted(id) | Self::Duplicate(id) => Some(id),
            Self::Skipped => None,
        }
    }

    /// The id it was stored under now (not a duplicate's earlier one).
    pub fn inserted(&self) -> Option<i64> {
        match self {
            Self::Inserted(id) => Some(id.0),
            Self::Duplicate(_) | Self::Skipped => None,
        }
    }
}

/// A committed batch: one outcome per event, and the id of the last event
/// committed before it. Batches commit one at a time, so `previous_id`
/// chains them: a receiver that has not routed `previous_id` yet knows it
/// missed a batch and reads it from the store.
#[derive(Debug, Clone)]
pub struct CommittedBatch {
    pub outcomes: Vec<InsertOutcome>,
    pub previous_id: EventId,
    /// Tasks of the batch that were no longer running in the store (another
    /// instance finished them): their rows and events were not written.
    pub stale_tasks: Vec<String>,
}

pub(super) struct BatchPlan {
    outcomes: Vec<Option<InsertOutcome>>,
    first_with_key: HashMap<String, usize>,
    repeats_in_batch: Vec<(usize, usize)>,
    positions: Vec<usize>,
    fresh: Vec<EventRow>,
}

impl BatchPlan {
    pub fn new(len: usize) -> Self {
        Self {
            outcomes: vec![None; len],
            first_with_key: HashMap::new(),
            repeats_in_batch: Vec::new(),
            positions: Vec::with_capacity(len),
            fresh: Vec::with_capacity(len),
        }
    }

    /// `true` when an earlier event of this batch has the same key: this one
    /// will answer that event's id.
    pub fn repeats_in_batch(&mut self, position: usize, key: &str) -> bool {
        match self.first_with_key.get(key) {
            Some(&first) => {
                self.repeats_in_batch.push((position, first));
                true
            }
            None => false,
        }
    }

    /// Its task is no longer running: store nothing (see `Skipped`).
    pub fn skip(&mut self, position: usize) {
        self.outcomes[position] = Some(InsertOutcome::Skipped);
    }

    /// The key was stored within the window: answer that id, store nothing.
    pub fn duplicate_of_stored(&mut self, position: usize, id: EventId) {
        self.outcomes[position] = Some(InsertOutcome::Duplicate(id));
    }

    /// A new event, to insert.
    pub fn insert(&mut self, position: usize, row: EventRow) {
        if let Some(key) = &row.idempotency_key {
            self.first_with_key.insert(key.clone(), position);
        }
        self.positions.push(position);
        self.fresh.push(row);
    }

    /// The rows to insert, in order.
    pub fn fresh(&self) -> &[EventRow] {
        &self.fresh
    }

    /// One outcome per event, given the ids the insert returned for
    /// [`Self::fresh`], in order.
    pub fn finish(mut self, inserted_ids: Vec<i64>) -> Option<Vec<InsertOutcome>> {
        for (position, id) in self.positions.iter().zip(inserted_ids) {
            self.outcomes[*position] = Some(InsertOutcome::Inserted(EventId(id)));
        }
        for (position, first) in self.repeats_in_batch {
            self.outcomes[position] = self.outcomes[first]
                .and_then(InsertOutcome::id)
                .map(InsertOutcome::Duplicate);
        }
        self.outcomes.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: Option<&str>) -> EventRow {
        EventRow {
            event_type: "commit".into(),
            data: "{}".into(),
            project_id: None,
            user_id: None,
            task_id: None,
            idempotency_key: key.map(str::to_owned),
            trace_context: None,
            created_at_ms: 0,
            seq: None,
        }
    }

    #[test]
    fn repeats_within_a_batch_and_stored_keys_answer_the_first_id() {
        let mut plan = BatchPlan::new(4);
        plan.insert(0, row(Some("a")));
        assert!(plan.repeats_in_batch(1, "a"));
        plan.duplicate_of_stored(2, EventId(7));
        plan.insert(3, row(None));
        assert_eq!(plan.fresh().len(), 2);
        let outcomes = plan.finish(vec![10, 11]).unwrap();
        assert_eq!(
            outcomes,
            [
                InsertOutcome::Inserted(EventId(10)),
                InsertOutcome::Duplicate(EventId(10)),
                InsertOutcome::Duplicate(EventId(7)),
                InsertOutcome::Inserted(EventId(11)),
            ]
        );
    }

    #[test]
    fn a_short_insert_answer_is_an_error_not_a_guess() {
        let mut plan = BatchPlan::new(2);
        plan.insert(0, row(None));
        plan.insert(1, row(None));
        assert!(plan.finish(vec![1]).is_none());
    }
}
