//! A publish waiting for its commit, the batch in flight, and what a
//! publish is answered.

use std::time::{Duration, Instant};

use actix::SpawnHandle;
use tokio::sync::oneshot;

use super::TaskWrite;
use crate::{
    domain::{EventId, NewEvent},
    store::{CommittedBatch, InsertOutcome, Operation, StoreError},
};

/// Why a publish was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PersistError {
    #[error("the event store is unavailable")]
    StoreUnavailable,
    /// Past the store timeout; nothing of the publish was stored.
    #[error("the event store did not answer within {} ms", .0.as_millis())]
    StoreTimeout(Duration),
    /// The commit was sent but not confirmed in time: the events may be
    /// stored (and then they are delivered).
    #[error("the event store did not confirm the commit within {} ms", .0.as_millis())]
    Unconfirmed(Duration),
    #[error("the broker is shutting down")]
    ShuttingDown,
}

impl From<StoreError> for PersistError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Timeout(budget) => Self::StoreTimeout(budget),
            StoreError::CommitUnconfirmed(budget) => Self::Unconfirmed(budget),
            _ => Self::StoreUnavailable,
        }
    }
}

/// What a stored publish answers.
#[derive(Debug, Clone, Default)]
pub struct Persisted {
    /// One per event, in order: its id, `None` for `persist: false` and for
    /// an event of a task that was no longer running.
    pub ids: Vec<Option<EventId>>,
    /// A task of the publish was no longer running in the store (another
    /// instance finished it): neither its row nor its events were written.
    pub stale: bool,
}

/// Where a publish's answer goes.
pub(super) enum Reply {
    /// A publisher awaiting it.
    Channel(oneshot::Sender<Answer>),
    /// A writer told on the Persister's thread ([`PersistThen`](super::PersistThen)).
    Then(Then),
}

impl Reply {
    pub(super) fn send(self, answer: Answer) {
        match self {
            Self::Channel(sender) => {
                let _ = sender.send(answer);
            }
            Self::Then(then) => then.call(answer),
        }
    }
}

/// What a publish is answered.
pub type Answer = Result<Persisted, PersistError>;

/// What a [`PersistThen`](super::PersistThen) does with its answer. Called
/// exactly once: dropped unanswered (the Persister stopped with it queued),
/// it is told `ShuttingDown`.
pub struct Then(Option<Box<dyn FnOnce(Answer) + Send>>);

impl Then {
    pub fn new(then: impl FnOnce(Answer) + Send + 'static) -> Self {
        Self(Some(Box::new(then)))
    }

    pub(super) fn call(mut self, answer: Answer) {
        if let Some(then) = self.0.take() {
            then(answer);
        }
    }
}

impl Drop for Then {
    fn drop(&mut self) {
        if let Some(then) = self.0.take() {
            then(Err(PersistError::ShuttingDown));
        }
    }
}

pub(super) struct PendingPublish {
    pub(super) events: Vec<NewEvent>,
    /// Task rows written in the same transaction, if still unfinished.
    pub(super) tasks: Vec<TaskWrite>,
    /// `None` once answered (a commit not confirmed in time).
    pub(super) reply: Option<Reply>,
    pub(super) queued_at: Instant,
}

impl PendingPublish {
    pub(super) fn answer(&mut self, answer: Answer) {
        if let Some(reply) = self.reply.take() {
            reply.send(answer);
        }
    }
}

/// The batch whose write is in flight.
pub(super) struct InFlight {
    /// Tells a late timer which batch it was set for.
    pub(super) seq: u64,
    pub(super) requests: Vec<PendingPublish>,
    /// The timer that answers the publishers should the commit not be
    /// confirmed; cancelled when the write ends (nearly always, in ms).
    pub(super) give_up: Option<SpawnHandle>,
    /// Its publishers were told the commit is unconfirmed: its outcome,
    /// when it comes, is logged for the operator to reconcile.
    pub(super) answered_unconfirmed: bool,
}

/// How a batch whose publishers were told "unconfirmed" ended: an
/// operator reconciles by it (a stored batch is delivered all the same; its
/// publishers' retries with an idempotency key get its ids).
pub(super) fn report_unconfirmed_outcome(
    result: &Result<(CommittedBatch, usize), StoreError>,
    started: Instant,
) {
    let after_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok((committed, stored)) => {
            let ids = committed
                .outcomes
                .iter()
                .filter_map(|outcome| match outcome {
                    InsertOutcome::Inserted(id) => Some(id.0),
                    _ => None,
                });
            let (first_id, last_id) = (ids.clone().min(), ids.max());
            tracing::warn!(
                operation = Operation::InsertBatch.as_str(),
                stored,
                first_id,
                last_id,
                after_ms,
                "a store commit reported as unconfirmed did commit"
            );
        }
        // Past ten store timeouts the Persister moves on (ids stay in
        // order): the store logs how the commit ends, and events it stored
        // reach only streams that resume from before them.
        Err(StoreError::CommitUnconfirmed(_)) => tracing::error!(
            operation = Operation::InsertBatch.as_str(),
            after_ms,
            "a store commit reported as unconfirmed is still unconfirmed; publishing goes on \
             without it, and should it commit its events are not delivered live"
        ),
        Err(error) => tracing::warn!(
            operation = Operation::InsertBatch.as_str(),
            error.message = %error,
            after_ms,
            "a store commit reported as unconfirmed did not commit"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn recorder() -> (Then, Arc<Mutex<Vec<Answer>>>) {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        let then = Then::new(move |answer| sink.lock().expect("not poisoned").push(answer));
        (then, heard)
    }

    #[test]
    fn a_then_hears_its_answer_once() {
        let (then, heard) = recorder();
        Reply::Then(then).send(Ok(Persisted::default()));
        let heard = heard.lock().expect("not poisoned");
        assert_eq!(heard.len(), 1);
        assert!(heard[0].is_ok());
    }

    #[test]
    fn a_then_dropped_unanswered_hears_shutting_down() {
        let (then, heard) = recorder();
        drop(Reply::Then(then));
        let heard = heard.lock().expect("not poisoned");
        assert_eq!(heard.len(), 1);
        assert!(matches!(heard[0], Err(PersistError::ShuttingDown)));
    }
}
