//! `LiveTasks`: the one owner, on this instance, of the state of the tasks
//! being written to.
//!
//! Every write to a task (progress, text, completion, failure, cancel) goes
//! through it, one task at a time, in arrival order. The task's current
//! state lives here in memory, so a token costs no read of the task row and
//! no round trip of its own: text is appended to the task's pending text
//! and flushed as one `text` event through the Persister's group commit,
//! with the task's row when it starts running and then at most once per
//! `row_refresh` (the event carries the producer's `seq` meanwhile, see
//! `ops::text_write`). Deltas that arrive while the previous flush
//! of the same task is still committing become one event; nothing else is
//! held back, so a producer waiting for each answer is never slowed (a
//! streamed upload gathers its deltas itself, see `services::uploads`). A
//! delta carrying a `seq` at or below the task's last accepted one is a
//! retry and is ignored.
//!
//! Across instances the store stays the arbiter: a flush writes the row
//! (or, between refreshes, checks it) only while the task is unfinished in
//! the store, so a cancel written by
//! another instance wins, and its `error` event (routed here like any
//! event, see [`TaskEnded`](crate::actors::registry::TaskEnded)) makes
//! this instance reload the task at once.

mod error;
mod holds;
mod messages;
mod ops;
mod reply;

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context};
use tokio::sync::watch;

pub use error::TaskWriteError;
pub use messages::{
    FlushHeld, OpenUpload, PeekTask, PeekedTask, UploadWatch, WriteReply, WriteTask, Writing,
};
pub use ops::Delta;
use ops::Op;
pub use reply::TaskWritten;

use super::persister::{PersistError, PersistThen, Persisted, Persister, Then};
use crate::{
    domain::{Task, TaskId, TaskStatus, WriteAccess},
    store::EventStore,
    telemetry::Metrics,
};

/// Tasks nobody wrote to for this long leave memory (they reload on the
/// next write).
const IDLE_EVICTION: Duration = Duration::from_secs(300);
/// The longest a running task's row may lag its text.
const MAX_ROW_REFRESH: Duration = Duration::from_secs(1);
/// Writes a task may have waiting before its writers are told to slow down.
pub const MAX_QUEUED_WRITES: usize = 4096;

/// One task's state and the writes waiting for it.
struct LiveTask {
    task: Arc<Task>,
    ops: VecDeque<Op>,
    /// A Persist of this task is on its way: the next waits for it, so the
    /// task's events keep their order.
    in_flight: bool,
    status: watch::Sender<TaskStatus>,
    /// The claim of the task's newest upload (see [`OpenUpload`]).
    upload: watch::Sender<u64>,
    touched: Instant,
    /// When a write that wrote the task's row was made (`None`: the row may
    /// be behind the memory, e.g. just loaded with a later `seq`).
    row_written: Option<Instant>,
    /// The row's `updated_at_ms` as this instance last wrote or read it.
    row_version: Option<i64>,
}

impl LiveTask {
    fn new(task: Task) -> Self {
        let (status, _) = watch::channel(task.status);
        Self {
            row_version: Some(task.updated_at_ms),
            task: Arc::new(task),
            ops: VecDeque::new(),
            in_flight: false,
            status,
            upload: watch::Sender::new(0),
            touched: Instant::now(),
            row_written: None,
        }
    }
}

pub struct LiveTasks {
    store: EventStore,
    persister: Addr<Persister>,
    tasks: HashMap<TaskId, LiveTask>,
    /// Uploads' text waiting out its coalescing window.
    holds: holds::Holds,
    metrics: Metrics,
    /// How often a running task's row is rewritten while only text comes.
    row_refresh: Duration,
}

impl LiveTasks {
    /// `orphan_timeout`: silence after which the TaskReaper fails a task by
    /// its row's `updated_at`, which text writes refresh well within it.
    pub fn new(
        store: EventStore,
        persister: Addr<Persister>,
        metrics: Metrics,
        orphan_timeout: Duration,
    ) -> Self {
        Self {
            store,
            persister,
            tasks: HashMap::new(),
            holds: holds::Holds::default(),
            metrics,
            row_refresh: (orphan_timeout / 4).min(MAX_ROW_REFRESH),
        }
    }

    /// Runs `then` once `task_id` is held in memory, loading it from the
    /// store first if need be, or with why it cannot be held.
    fn with_live(
        &mut self,
        task_id: TaskId,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, TaskId, Result<(), TaskWriteError>, &mut Context<Self>) + 'static,
    ) {
        if self.tasks.contains_key(&task_id) {
            return then(self, task_id, Ok(()), ctx);
        }
        let store = self.store.clone();
        let id = task_id.clone();
        ctx.spawn(
            actix::fut::wrap_future(async move { store.task_for_writing(&id).await }).map(
                move |loaded, act: &mut Self, ctx| {
                    let held = match loaded {
                        // Loaded meanwhile by another write: that copy is newer.
                        _ if act.tasks.contains_key(&task_id) => Ok(()),
                        Ok(Some(task)) => {
                            act.tasks.insert(task_id.clone(), LiveTask::new(task));
                            Ok(())
                        }
                        Ok(None) => Err(TaskWriteError::NotFound),
                        Err(error) => Err(error.into()),
                    };
                    then(act, task_id, held, ctx);
                },
            ),
        );
    }

    /// Queues `op` for `task_id`, loading the task first if it is not in
    /// memory. A task outside `access` answers exactly as an unknown one,
    /// so task ids of other tenants cannot be probed; checking here saves
    /// the writer a round trip to ask first.
    fn enqueue(&mut self, task_id: TaskId, access: WriteAccess, op: Op, ctx: &mut Context<Self>) {
        self.with_live(task_id, ctx, move |act, task_id, held, ctx| {
            if let Err(error) = held {
                return op.refuse(error);
            }
            let live = act.tasks.get_mut(&task_id).expect("held");
            if !access.allows(live.task.project_id.as_ref()) {
                return op.refuse(TaskWriteError::NotFound);
            }
            if live.ops.len() >= MAX_QUEUED_WRITES {
                return op.refuse(TaskWriteError::Contended);
            }
            live.touched = Instant::now();
            live.ops.push_back(op);
            act.pump(&task_id, ctx);
        });
    }

    /// Runs the task's next writes unless a Persist of it is on its way.
    fn pump(&mut self, task_id: &TaskId, ctx: &mut Context<Self>) {
        let Some(live) = self.tasks.get_mut(task_id) else {
            return;
        };
        if live.in_flight || live.ops.is_empty() {
            return;
        }
        // An upload's text waits out its window in the queue, with what the
        // upload queues meanwhile; anything else queued behind it (another
        // writer's change or text, the upload's release) or the drain
        // writes it at once, first: text that arrived first is never
        // overtaken, and goes as one event.
        let now = Instant::now();
        if let Some(ops::Op::Text {
            hold_until: Some(until),
            ..
        }) = live.ops.front()
            && *until > now
            && !self.holds.flushing
            && live.ops.iter().all(ops::Op::is_held)
        {
            if let Some(delay) = self.holds.add(task_id.clone(), *until, now) {
                ctx.run_later(delay, |act, ctx| act.release_due(ctx));
            }
            return;
        }
        let Some(write) = ops::next_write(live, &self.metrics, self.row_refresh) else {
            return;
        };
        live.in_flight = true;
        let task_id = task_id.clone();
        let me = ctx.address();
        let ops::Write { persist, awaiting } = write;
        // The answer comes back as a message, not as a future spawned on
        // this actor (actix polls every future an actor spawned each time
        // it wakes: with a thousand generations in flight each token paid
        // for a thousand polls), nor as a task of its own awaiting it.
        self.persister.do_send(PersistThen {
            persist,
            then: Then::new(move |sent| {
                me.do_send(WriteReturned {
                    task_id,
                    awaiting,
                    sent,
                })
            }),
        });
    }

    /// A Persist of a task came back: answer its writers, then go on.
    fn written(&mut self, returned: WriteReturned, ctx: &mut Context<Self>) {
        let WriteReturned {
            task_id,
            awaiting:
                ops::Awaiting {
                    replies,
                    task,
                    row_at,
                    is_text,
                    again,
                },
            sent,
        } = returned;
        let task_id = &task_id;
        let Some(live) = self.tasks.get_mut(task_id) else {
            return;
        };
        live.in_flight = false;
        match sent {
            Ok(persisted) if !persisted.stale => {
                live.status.send_if_modified(|status| {
                    std::mem::replace(status, task.status) != task.status
                });
                live.row_written = row_at.or(live.row_written);
                if row_at.is_some() {
                    live.row_version = Some(task.updated_at_ms);
                }
                let ids = is_text.then_some(persisted.ids.as_slice());
                for reply in replies {
                    reply.answer_stored(task.clone(), ids);
                }
                if task.status.is_terminal() {
                    tracing::info!(task_id = %task_id, status = %task.status, "task finished");
                }
            }
            Ok(_) => {
                // Another instance finished the task, rewrote its row or
                // accepted `seq`s this one did not know: nothing was
                // written. Reload it and ask the same again of what it
                // became (a finished task refuses, with its reason).
                tracing::info!(task_id = %task_id, "task written by another instance: reloading it");
                self.reload(task_id.clone(), again.ops(replies), ctx);
                return;
            }
            Err(error) => {
                // Nothing was stored: the memory goes back to the row.
                for reply in replies {
                    reply.answer(Err(error.clone().into()));
                }
                self.reload(task_id.clone(), Vec::new(), ctx);
                return;
            }
        }
        live.task = task;
        self.pump(task_id, ctx);
    }

    /// Replaces the task's state with its row, then goes on with its writes,
    /// `again` first.
    fn reload(&mut self, task_id: TaskId, again: Vec<ops::Op>, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let id = task_id.clone();
        if let Some(live) = self.tasks.get_mut(&task_id) {
            live.in_flight = true;
        }
        ctx.spawn(
            actix::fut::wrap_future(async move { store.task_for_writing(&id).await }).map(
                move |loaded, act: &mut Self, ctx| {
                    let Some(live) = act.tasks.get_mut(&task_id) else {
                        return;
                    };
                    live.in_flight = false;
                    // Each refused write gets its own copy of why.
                    let loaded = loaded.map_err(PersistError::from);
                    match loaded {
                        Ok(Some(task)) => {
                            live.status.send_replace(task.status);
                            live.row_version = Some(task.updated_at_ms);
                            live.task = Arc::new(task);
                            live.row_written = None;
                            for op in again.into_iter().rev() {
                                live.ops.push_front(op);
                            }
                        }
                        // Gone, or unreadable: forget it; the next write loads
                        // it. Unreadable is the store's failure (503, retry),
                        // not a race between writers (409).
                        failed => {
                            let live = act.tasks.remove(&task_id).expect("checked above");
                            for op in again.into_iter().chain(live.ops) {
                                op.refuse(match &failed {
                                    Err(error) => TaskWriteError::Persist(error.clone()),
                                    Ok(_) => TaskWriteError::NotFound,
                                });
                            }
                            return;
                        }
                    }
                    act.pump(&task_id, ctx);
                },
            ),
        );
    }

    /// Writes the held text whose window is over, and sets the timer for
    /// the next.
    fn release_due(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        for task_id in self.holds.take_due(now) {
            self.pump(&task_id, ctx);
        }
        if let Some(delay) = self.holds.rearm(now) {
            ctx.run_later(delay, |act, ctx| act.release_due(ctx));
        }
    }

    /// The instance drains: every held text is written now, and nothing is
    /// held from here on.
    fn flush_held(&mut self, ctx: &mut Context<Self>) {
        self.holds.flushing = true;
        for task_id in self.holds.take_all() {
            self.pump(&task_id, ctx);
        }
    }

    fn evict_idle(&mut self) {
        let now = Instant::now();
        // A task someone watches (an open upload) stays: its watch must see
        // a cancel.
        self.tasks.retain(|_, live| {
            live.in_flight
                || !live.ops.is_empty()
                || live.status.receiver_count() > 0
                || now - live.touched < IDLE_EVICTION
        });
    }
}

/// A Persist of one task came back (from the task that waited for it).
#[derive(actix::Message)]
#[rtype(result = "()")]
struct WriteReturned {
    task_id: TaskId,
    awaiting: ops::Awaiting,
    sent: Result<Persisted, PersistError>,
}

impl actix::Handler<WriteReturned> for LiveTasks {
    type Result = ();

    fn handle(&mut self, returned: WriteReturned, ctx: &mut Context<Self>) {
        self.written(returned, ctx);
    }
}

impl Actor for LiveTasks {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(IDLE_EVICTION / 5, |act, _| act.evict_idle());
    }
}
