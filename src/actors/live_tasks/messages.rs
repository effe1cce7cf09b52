//! The messages LiveTasks answers: the writes, and what others may ask of
//! a task it holds.

use actix::{Context, Handler, Message};
use tokio::sync::{oneshot, watch};

use super::{
    LiveTasks, TaskWriteError, TaskWritten,
    ops::{Delta, Op},
    reply::Reply,
};
use crate::{
    actors::registry::TaskEnded,
    domain::{Task, TaskChange, TaskId, TaskStatus, WriteAccess},
};

/// Where a write's answer goes once it is stored or refused. The writer
/// sends its write with `do_send` and awaits the other end: no actix
/// response channel, and no task spawned to drive a future, on the path of
/// every token. Dropped unanswered (the actor stopped), the writer's end
/// reads as closed.
pub type WriteReply = oneshot::Sender<Result<TaskWritten, TaskWriteError>>;

/// What a writer does to a task.
pub enum Writing {
    /// A change (not text).
    Change(TaskChange),
    /// Text; a delta whose `seq` is at or below the task's last accepted
    /// one is a retry and is ignored. `hold_until`: a streamed upload's
    /// coalescing window, which the text waits out in the task's queue
    /// unless something queues behind it (so another writer's end, or the
    /// drain, never overtakes text that arrived first).
    Text {
        deltas: Vec<Delta>,
        hold_until: Option<std::time::Instant>,
    },
}

/// Write to a task; answers once the write is stored (for text, with the
/// id of the `text` event it went into) or refused.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WriteTask {
    pub task_id: TaskId,
    pub writing: Writing,
    /// What the writer may write to: a task outside it answers `NotFound`.
    pub access: WriteAccess,
    pub reply: WriteReply,
}

impl Handler<WriteTask> for LiveTasks {
    type Result = ();

    fn handle(&mut self, msg: WriteTask, ctx: &mut Context<Self>) {
        let reply = Reply::new(msg.reply);
        let op = match msg.writing {
            Writing::Change(change) => Op::Change { change, reply },
            Writing::Text { deltas, hold_until } => Op::Text {
                deltas,
                reply,
                hold_until,
            },
        };
        self.enqueue(msg.task_id, msg.access, op, ctx);
    }
}

/// The instance drains: write every upload's held text now (before the
/// Persister stops taking writes), and hold none from here on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushHeld;

impl Handler<FlushHeld> for LiveTasks {
    type Result = ();

    fn handle(&mut self, _: FlushHeld, ctx: &mut Context<Self>) {
        self.flush_held(ctx);
    }
}

/// The task as this instance holds it in memory, if it does (fresher than
/// its row while text is being written).
#[derive(Message)]
#[rtype(result = "Option<PeekedTask>")]
pub struct PeekTask {
    pub task_id: TaskId,
}

/// A task held in memory.
pub struct PeekedTask {
    pub task: Task,
    /// The row's `updated_at_ms` as this instance last wrote or read it: a
    /// row found newer was written since by another instance.
    pub row_version: Option<i64>,
}

impl Handler<PeekTask> for LiveTasks {
    type Result = Option<PeekedTask>;

    fn handle(&mut self, msg: PeekTask, _: &mut Context<Self>) -> Option<PeekedTask> {
        self.tasks.get(&msg.task_id).map(|live| PeekedTask {
            task: Task::clone(&live.task),
            row_version: live.row_version,
        })
    }
}

/// The task's status as it changes here (a stored cancel, a reload after
/// another instance ended it): an upload watches it to stop at once.
///
/// It also claims the task's upload: the newest upload to a task is the
/// one that writes, and an older one sees `current` move past its `claim`.
#[derive(Message)]
#[rtype(result = "Option<UploadWatch>")]
pub struct OpenUpload {
    pub task_id: TaskId,
}

/// What an open upload watches.
pub struct UploadWatch {
    pub status: watch::Receiver<TaskStatus>,
    /// The claim of the task's newest upload.
    pub current: watch::Receiver<u64>,
    /// This upload's claim.
    pub claim: u64,
}

impl Handler<OpenUpload> for LiveTasks {
    type Result = actix::ResponseFuture<Option<UploadWatch>>;

    /// Loads the task if need be, so an upload that has not written yet
    /// sees a cancel too; `None` only for a task that cannot be loaded.
    fn handle(&mut self, msg: OpenUpload, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.with_live(msg.task_id, ctx, move |act, task_id, held, _| {
            let watch = held
                .ok()
                .and_then(|()| act.tasks.get(&task_id))
                .map(|live| {
                    let claim = *live.upload.borrow() + 1;
                    live.upload.send_replace(claim);
                    UploadWatch {
                        status: live.status.subscribe(),
                        current: live.upload.subscribe(),
                        claim,
                    }
                });
            let _ = reply.send(watch);
        });
        Box::pin(async move { answer.await.ok().flatten() })
    }
}

impl Handler<TaskEnded> for LiveTasks {
    type Result = ();

    fn handle(&mut self, msg: TaskEnded, ctx: &mut Context<Self>) {
        let unfinished = self
            .tasks
            .get(&msg.task_id)
            .is_some_and(|live| !live.task.status.is_terminal() && !live.in_flight);
        if unfinished {
            self.reload(msg.task_id, Vec::new(), ctx);
        }
    }
}
