//! A publish waiting for its commit, the batch in flight, and what a
//! publish is answered.

use std::time::{Duration, Instant};

use actix::SpawnHandle;
use tokio::sync::oneshot;

use crate::{
    domain::{EventId, NewEvent, Task},
    store::StoreError,
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

pub(super) type Reply = oneshot::Sender<Result<Persisted, PersistError>>;

pub(super) struct PendingPublish {
    pub(super) events: Vec<NewEvent>,
    /// Task rows written in the same transaction, if still unfinished.
    pub(super) tasks: Vec<Task>,
    /// `None` once answered (a commit not confirmed in time).
    pub(super) reply: Option<Reply>,
    pub(super) queued_at: Instant,
}

impl PendingPublish {
    pub(super) fn answer(&mut self, answer: Result<Persisted, PersistError>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(answer);
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
}
