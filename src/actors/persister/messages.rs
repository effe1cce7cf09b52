//! What the Persister is asked: store and route a publish, and drain.

use std::time::Instant;

use actix::{Context, Handler, Message, ResponseFuture};
use tokio::sync::oneshot;

use super::{PendingPublish, PersistError, Persisted, Persister};
use crate::domain::{EventId, NewEvent, Task};

/// Store (unless `persist: false`) and deliver these events, in order, and
/// write these tasks' rows in the same transaction (each only if it is
/// still unfinished in the store, and a stale task's events are skipped).
/// Answers once they are stored and handed to the Registry.
#[derive(Debug, Message)]
#[rtype(result = "Result<Persisted, PersistError>")]
pub struct Persist {
    pub events: Vec<NewEvent>,
    pub tasks: Vec<Task>,
}

impl Handler<Persist> for Persister {
    type Result = ResponseFuture<Result<Persisted, PersistError>>;

    fn handle(&mut self, msg: Persist, ctx: &mut Context<Self>) -> Self::Result {
        if self.sealed {
            return Box::pin(async { Err(PersistError::ShuttingDown) });
        }
        let (reply, answer) = oneshot::channel();
        self.pending.push_back(PendingPublish {
            events: msg.events,
            tasks: msg.tasks,
            reply: Some(reply),
            queued_at: Instant::now(),
        });
        self.flush(ctx);
        Box::pin(async move { answer.await.unwrap_or(Err(PersistError::ShuttingDown)) })
    }
}

/// Stops taking publishes (later ones answer `ShuttingDown`, to be retried
/// on another instance) and resolves once every queued one is stored and
/// handed to the router. Answers the highest id it ever stored.
#[derive(Debug, Message)]
#[rtype(result = "Option<EventId>")]
pub struct Drain;

impl Handler<Drain> for Persister {
    type Result = ResponseFuture<Option<EventId>>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.sealed = true;
        let (done, wait) = oneshot::channel();
        self.drain_waiters.push(done);
        self.flush(ctx);
        Box::pin(async move { wait.await.ok().flatten() })
    }
}
