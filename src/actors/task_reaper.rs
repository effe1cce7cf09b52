//! `TaskReaper`: fails tasks whose producer went silent.
//!
//! A generation whose producer crashed would otherwise spin forever in every
//! browser watching it. Every `check_period` the reaper fails unfinished
//! tasks with no write for `orphan_timeout`, which emits a clear `error`
//! event and ends their streams.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};

use crate::{domain::now_ms, task_service::TaskService};

pub struct TaskReaper {
    tasks: TaskService,
    orphan_timeout: Duration,
    running: bool,
}

impl TaskReaper {
    pub fn new(tasks: TaskService, orphan_timeout: Duration) -> Self {
        Self {
            tasks,
            orphan_timeout,
            running: false,
        }
    }

    fn reap(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        self.running = true;
        let tasks = self.tasks.clone();
        let timeout = self.orphan_timeout;
        let silent_since = now_ms() - timeout.as_millis() as i64;
        ctx.spawn(
            async move { tasks.fail_orphans(silent_since, timeout.as_secs()).await }
                .into_actor(self)
                .map(|result, act, _| {
                    act.running = false;
                    if let Err(error) = result {
                        tracing::warn!(error.message = %error, "orphaned-task check failed");
                    }
                }),
        );
    }
}

impl Actor for TaskReaper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Check four times per timeout: a task is failed at most 25 % late.
        let period =
            (self.orphan_timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
        ctx.run_interval(period, Self::reap);
    }
}
