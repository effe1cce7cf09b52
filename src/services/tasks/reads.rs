//! A task as callers read it: from this instance's memory while it writes
//! the task, else (or, in a cluster, when another instance wrote it since)
//! from its row; and whether a caller may see or write it.

use super::TaskService;
use crate::{
    actors::{live_tasks::PeekTask, persister::PersistError},
    auth::Principal,
    domain::{Task, TaskId},
};

use super::TaskWriteError;

impl TaskService {
    /// The task as it is now: the one being written to, from memory (its
    /// row follows with each write), any other from the store. In a
    /// cluster the row is read too: another instance may have written it
    /// since (a `PATCH` through it), which this one learns only at its own
    /// next row write.
    pub async fn get(&self, task_id: &TaskId) -> Result<Task, TaskWriteError> {
        let live = self
            .live
            .send(PeekTask {
                task_id: task_id.clone(),
            })
            .await
            .map_err(|_| PersistError::ShuttingDown)?;
        match live {
            Some(live) if !self.rows_shared => Ok(live.task),
            Some(live) => {
                let row = self.store.task(task_id).await?;
                Ok(match row {
                    // Compared as versions, not times: instances' clocks differ.
                    Some(row) if Some(row.updated_at_ms) != live.row_version => {
                        newer_row(row, &live.task)
                    }
                    _ => live.task,
                })
            }
            None => self
                .store
                .task(task_id)
                .await?
                .ok_or(TaskWriteError::NotFound),
        }
    }

    /// The task, if `principal` may see it. A task outside the caller's
    /// projects answers exactly as an unknown one, so task ids of other
    /// tenants cannot be probed.
    pub async fn visible(
        &self,
        principal: &Principal,
        task_id: &TaskId,
    ) -> Result<Task, TaskWriteError> {
        let task = self.get(task_id).await?;
        match &task.project_id {
            Some(project) if !principal.may_access(project) => Err(TaskWriteError::NotFound),
            _ => Ok(task),
        }
    }

    /// The task, if `principal` may write to it: one it may see, and, for a
    /// caller confined to its projects, one of them. Any other answers as
    /// an unknown one.
    pub async fn writable(
        &self,
        principal: &Principal,
        task_id: &TaskId,
    ) -> Result<Task, TaskWriteError> {
        let task = self.visible(principal, task_id).await?;
        if principal.write_access().allows(task.project_id.as_ref()) {
            Ok(task)
        } else {
            Err(TaskWriteError::NotFound)
        }
    }
}

/// A row written by another instance since this one's memory of the task:
/// the row's state, with the text marks this instance's memory may hold
/// ahead of its row (text writes rewrite the row at most once a second).
fn newer_row(row: Task, memory: &Task) -> Task {
    Task {
        first_token_at_ms: row.first_token_at_ms.or(memory.first_token_at_ms),
        last_token_at_ms: row.last_token_at_ms.max(memory.last_token_at_ms),
        last_seq: row.last_seq.max(memory.last_seq),
        updated_at_ms: row.updated_at_ms.max(memory.updated_at_ms),
        ..row
    }
}
