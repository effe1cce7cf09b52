//! What the TaskReaper asks of the tasks: how long the store was failing
//! (that is no producer's silence), and to fail the silent ones.

use super::{TaskChange, TaskService, TaskWriteError};
use crate::domain::now_ms;

impl TaskService {
    /// The store's latest run of failures, as wall-clock times in ms: when
    /// it began and when it last failed (see [`EventStore::latest_failures`]).
    pub fn store_outage_ms(&self) -> Option<(i64, i64)> {
        let now = now_ms();
        self.store.latest_failures().map(|run| {
            (
                now - run.began_ago.as_millis() as i64,
                now - run.last_ago.as_millis() as i64,
            )
        })
    }

    /// Fails unfinished tasks (of `task_type`, if given) whose producer has
    /// been silent since `silent_since_ms`, with `reason`; returns how many.
    pub async fn fail_silent(
        &self,
        silent_since_ms: i64,
        task_type: Option<&str>,
        reason: &str,
    ) -> Result<usize, TaskWriteError> {
        let mut failed = 0;
        for task in self
            .store
            .silent_tasks(silent_since_ms, task_type, 100)
            .await?
        {
            let change = TaskChange::Fail {
                error: reason.to_owned(),
            };
            match self.change(&task.task_id, change).await {
                Ok(_) => {
                    failed += 1;
                    tracing::warn!(task_id = %task.task_id, reason, "failed a task whose producer went silent");
                }
                // Finished or written meanwhile: nothing to do.
                Err(TaskWriteError::Task(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(failed)
    }
}
