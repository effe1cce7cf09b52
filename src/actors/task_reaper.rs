//! `TaskReaper`: fails tasks whose producer went silent.
//!
//! A generation whose producer crashed would otherwise spin forever in every
//! browser watching it. Every `check_period` the reaper fails unfinished
//! tasks with no write for `orphan_timeout`, which emits a clear `error`
//! event and ends their streams. Time the store was failing does not count
//! as silence: a timeout must pass since the store's latest failure (a
//! failed read counts: during an outage every instance's probes fail, also
//! where no producer writes).
//!
//! Tasks of the built-in demo producer are its own to end: that producer
//! lives in a broker process, so once after start the reaper fails demo
//! tasks that have been silent longer than any live demo ever is (their
//! producer died with a previous process), instead of leaving them
//! `running` until the orphan timeout.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};

use crate::{demo, domain::now_ms, services::tasks::TaskService};

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
        // Silence counts only while the store could take writes: a producer
        // retrying through an outage was refused, not silent. So a task is
        // failed once it has been silent a whole timeout before the store's
        // latest failure, or a whole timeout since.
        let silent_since = silent_since_ms(now_ms(), tasks.store_outage_ms(), timeout);
        ctx.spawn(
            async move {
                let reason = format!(
                    "orphaned: no write from the producer for {} s",
                    timeout.as_secs()
                );
                tasks.fail_silent(silent_since, None, &reason).await
            }
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

/// The write time before which an unfinished task counts as orphaned at
/// `now`: a whole `timeout` ago; but while the store's latest outage
/// (`began`, `last` failure) is less than a `timeout` old, a whole
/// `timeout` before the outage began.
fn silent_since_ms(now: i64, outage: Option<(i64, i64)>, timeout: Duration) -> i64 {
    let timeout = timeout.as_millis() as i64;
    match outage {
        Some((began, last)) if now - last < timeout => began - timeout,
        _ => now - timeout,
    }
}

impl Actor for TaskReaper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Check four times per timeout: a task is failed at most 25 % late.
        let period =
            (self.orphan_timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
        ctx.run_interval(period, Self::reap);
        ctx.run_later(demo::MAX_SILENCE, |act, ctx| {
            let tasks = act.tasks.clone();
            let silent_since = now_ms() - demo::MAX_SILENCE.as_millis() as i64;
            ctx.spawn(
                async move {
                    tasks
                        .fail_silent(
                            silent_since,
                            Some(demo::TASK_TYPE),
                            "the demo producer stopped with a previous broker process",
                        )
                        .await
                }
                .into_actor(act)
                .map(|result, _, _| match result {
                    Ok(0) => {}
                    Ok(failed) => tracing::info!(failed, "failed demo tasks of a previous process"),
                    Err(error) => {
                        tracing::warn!(error.message = %error, "abandoned demo task check failed")
                    }
                }),
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn silence_while_the_store_failed_does_not_count() {
        let now = 10 * 60_000;
        // No outage, or one that ended over a timeout ago: a minute.
        assert_eq!(silent_since_ms(now, None, MINUTE), now - 60_000);
        assert_eq!(
            silent_since_ms(now, Some((now - 200_000, now - 61_000)), MINUTE),
            now - 60_000
        );
        // An outage of 90 s that ended 10 s ago: only tasks silent a
        // minute before it began.
        assert_eq!(
            silent_since_ms(now, Some((now - 100_000, now - 10_000)), MINUTE),
            now - 160_000
        );
    }
}
