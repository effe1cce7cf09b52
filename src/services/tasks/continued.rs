//! A message that several tasks write: a chat turn that continues an
//! assistant message (the AI SDK's next request after a tool approval or a
//! browser-side tool's output) is a task created with that message's id.
//! A chat client resuming such a turn rebuilds the message from nothing,
//! so it is sent the earlier tasks' parts first.

use super::{TaskService, TaskWriteError};
use crate::{domain::Task, store::EarlierTasks};

/// Earlier tasks of one message sent to a resuming chat, at most: a tool
/// loop of this many approvals is past what a chat page shows as one
/// message; the oldest are the ones kept, as the message begins with them.
pub const MAX_EARLIER_TASKS: i64 = 64;

impl TaskService {
    /// The finished tasks that wrote the earlier parts of the message
    /// `task` continues, oldest first: `task`'s chat's tasks of the same
    /// project created with the same `message_id` before it, and the task
    /// whose id the message bears. None when `task` names no message or
    /// no chat. A task of another project never counts (another tenant
    /// cannot put its text into this message, and whoever may see `task`
    /// may see its project's), nor one still unfinished (a stray whose
    /// stream would not end before this task's begins).
    #[tracing::instrument(name = "task.message_lookup", skip_all, fields(task_id = %task.task_id, sse.message.earlier_tasks))]
    pub async fn earlier_in_message(&self, task: &Task) -> Result<Vec<Task>, TaskWriteError> {
        let (Some(message_id), Some(chat_id)) = (&task.message_id, &task.chat_id) else {
            return Ok(Vec::new());
        };
        let earlier = EarlierTasks {
            chat_id: chat_id.to_string(),
            message_id: message_id.to_string(),
            project_id: task.project_id.as_ref().map(ToString::to_string),
            before_ms: task.created_at_ms,
            except: task.task_id.to_string(),
            limit: MAX_EARLIER_TASKS,
        };
        let tasks = self.store.message_tasks(earlier).await?;
        let found = tasks.len();
        tracing::Span::current().record("sse.message.earlier_tasks", found);
        if found as i64 == MAX_EARLIER_TASKS {
            tracing::warn!(
                task_id = %task.task_id,
                message_id = %message_id,
                kept = found,
                "a continued message has as many earlier tasks as a resume sends, or more: any later ones before this task are left out"
            );
        }
        Ok(tasks)
    }
}
