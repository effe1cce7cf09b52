//! What the Persister is asked: store and route a publish, and drain.

use std::{sync::Arc, time::Instant};

use actix::{Context, Handler, Message, ResponseFuture};
use tokio::sync::oneshot;

use super::{
    PendingPublish, PersistError, Persisted, Persister,
    pending::{Reply, Then},
};
use crate::domain::{EventId, NewEvent, Task, TaskId};

/// Store (unless `persist: false`) and deliver these events, in order, and
/// write these tasks' rows in the same transaction (each only if it is
/// still unfinished in the store, and a stale task's events are skipped).
/// Answers once they are stored and handed to the Registry.
#[derive(Debug, Message)]
#[rtype(result = "Result<Persisted, PersistError>")]
pub struct Persist {
    pub events: Vec<NewEvent>,
    pub tasks: Vec<TaskWrite>,
}

/// A task of a [`Persist`]: its events are stored only while it is
/// unfinished in the store (and, for a write of numbered deltas, while the
/// store holds no later `seq` than the writer knew).
#[derive(Debug)]
pub struct TaskWrite {
    pub task: Arc<Task>,
    /// Its row is written too; otherwise it is only checked (a text write
    /// between the row's refreshes, see `actors::live_tasks`).
    pub with_row: bool,
    /// The row's `updated_at_ms` as its writer last wrote or read it: a row
    /// rewritten since by another instance is not overwritten (the write
    /// is stale, and its writer reloads the task).
    pub row_version: Option<i64>,
    /// For a text write whose deltas carried a `seq`: the task's last `seq`
    /// as this instance knew it before them. Another instance may have
    /// accepted later ones meanwhile (a producer's retry sent elsewhere):
    /// then nothing of this write is stored and the writer reloads the task.
    pub seq_known: Option<KnownSeq>,
}

/// The last `seq` a writer knew of a task (`None`: none yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownSeq(pub Option<u64>);

impl TaskWrite {
    /// A write of the task's row.
    pub fn with_row(task: Arc<Task>) -> Self {
        Self {
            task,
            with_row: true,
            row_version: None,
            seq_known: None,
        }
    }

    /// A write that only checks the row.
    pub fn checked(task: Arc<Task>) -> Self {
        Self {
            task,
            with_row: false,
            row_version: None,
            seq_known: None,
        }
    }

    pub fn task(&self) -> &Task {
        &self.task
    }

    /// The task whose row is written, if it is, and the row version expected.
    pub fn row(&self) -> Option<(&Task, Option<i64>)> {
        self.with_row.then_some((&*self.task, self.row_version))
    }

    /// The task whose row is only checked, if it is.
    pub fn check(&self) -> Option<&TaskId> {
        (!self.with_row).then_some(&self.task.task_id)
    }

    /// The task and the `seq` its writer knew, for a write of numbered deltas.
    pub fn seq_check(&self) -> Option<(&TaskId, KnownSeq)> {
        self.seq_known.map(|known| (&self.task.task_id, known))
    }
}

impl Handler<Persist> for Persister {
    type Result = ResponseFuture<Result<Persisted, PersistError>>;

    fn handle(&mut self, msg: Persist, ctx: &mut Context<Self>) -> Self::Result {
        if self.sealed {
            return Box::pin(async { Err(PersistError::ShuttingDown) });
        }
        let (reply, answer) = oneshot::channel();
        self.queue(msg, Reply::Channel(reply), ctx);
        Box::pin(async move { answer.await.unwrap_or(Err(PersistError::ShuttingDown)) })
    }
}

/// A [`Persist`] whose answer is handed to `then`, on the Persister's
/// thread, instead of awaited: the path of every text write, where a task
/// spawned to await the answer and the channels carrying it cost more than
/// the rest of the write in LiveTasks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PersistThen {
    pub persist: Persist,
    pub then: Then,
}

impl Handler<PersistThen> for Persister {
    type Result = ();

    fn handle(&mut self, msg: PersistThen, ctx: &mut Context<Self>) {
        if self.sealed {
            return msg.then.call(Err(PersistError::ShuttingDown));
        }
        self.queue(msg.persist, Reply::Then(msg.then), ctx);
    }
}

impl Persister {
    fn queue(&mut self, persist: Persist, reply: Reply, ctx: &mut Context<Self>) {
        self.pending.push_back(PendingPublish {
            events: persist.events,
            tasks: persist.tasks,
            reply: Some(reply),
            queued_at: Instant::now(),
        });
        self.flush(ctx);
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
