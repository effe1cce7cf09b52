//! `TaskService`: the task API's use cases. Creating a task writes its row;
//! every later write (progress, text, completion, failure, cancel) goes to
//! the [`LiveTasks`] actor, the one owner of the state of tasks being
//! written to, which stores the change's events and the task's row in one
//! group commit, then delivers the events (carrying `task_id`, so task
//! streams receive them).

use std::{sync::Arc, time::Duration};

use actix::Addr;
use tokio::sync::oneshot;

mod continued;
mod reads;
mod reaping;

use super::upload_memory::UploadMemory;
pub use crate::actors::live_tasks::{Delta, TaskWriteError, TaskWritten, UploadWatch};
use crate::{
    actors::{
        live_tasks::{LiveTasks, OpenUpload, WriteTask, Writing},
        persister::PersistError,
    },
    auth::Principal,
    domain::{
        AnswerEnd, ChatId, MessageId, ProjectId, Task, TaskChange, TaskId, TaskStatus, ToolEvent,
        WriteAccess, check_task_text, now_ms,
    },
    shutdown::ShutdownHandle,
    store::{ChatTasks, EventStore},
    telemetry::Metrics,
};

/// A task to create; every field is optional.
#[derive(Debug, Default)]
pub struct NewTask {
    /// Generated when absent.
    pub task_id: Option<TaskId>,
    /// Labels the task's metrics (time to first token, gaps).
    pub task_type: Option<String>,
    pub stage: Option<String>,
    pub message: Option<String>,
    pub project_id: Option<ProjectId>,
    /// The conversation the generation belongs to.
    pub chat_id: Option<ChatId>,
    /// The assistant message it writes (see [`Task::message_id`]).
    pub message_id: Option<MessageId>,
    /// The answers its message's calls got outside the broker, stored
    /// first (see `generation_input::continued_answers`).
    pub tool_results: Vec<ToolEvent>,
}

#[derive(Clone)]
pub struct TaskService {
    store: EventStore,
    live: Addr<LiveTasks>,
    pub(super) metrics: Metrics,
    /// `--text-coalesce-ms`, which paces a streamed upload's writes.
    text_coalesce: Duration,
    /// How long an open upload that sends nothing a task keeps (a
    /// provider's pings) may leave its task's row unwritten: well within
    /// `--task-orphan-timeout-secs`, so a live producer is never reaped.
    upload_keep_alive: Duration,
    /// The instance's drain: open uploads are answered when it begins.
    pub(super) draining: ShutdownHandle,
    /// What all uploads may hold in unfinished lines.
    pub(super) upload_memory: UploadMemory,
    /// Other instances write the same rows (a cluster): a task held in
    /// memory may be older than its row.
    rows_shared: bool,
}

pub use crate::domain::task_json;

impl TaskService {
    pub fn new(
        store: EventStore,
        live: Addr<LiveTasks>,
        metrics: Metrics,
        text_coalesce: Duration,
        orphan_timeout: Duration,
        draining: ShutdownHandle,
        upload_memory: UploadMemory,
    ) -> Self {
        Self {
            store,
            live,
            metrics,
            text_coalesce,
            upload_keep_alive: orphan_timeout / 4,
            draining,
            upload_memory,
            rows_shared: false,
        }
    }

    /// In a cluster, other instances write the same task rows.
    pub fn with_rows_shared(self, rows_shared: bool) -> Self {
        Self {
            rows_shared,
            ..self
        }
    }

    /// How long an upload's text gathers before its next write.
    pub(super) fn text_coalesce(&self) -> Duration {
        self.text_coalesce
    }

    pub(super) fn upload_keep_alive(&self) -> Duration {
        self.upload_keep_alive
    }

    pub async fn create(&self, request: NewTask) -> Result<Task, TaskWriteError> {
        check_task_text("stage", request.stage.as_deref())?;
        check_task_text("message", request.message.as_deref())?;
        let mut task = Task::new(
            request.task_id.unwrap_or_else(TaskId::generate),
            request.stage,
            request.message,
            request.project_id,
            now_ms(),
        );
        task.task_type = request.task_type;
        task.chat_id = request.chat_id;
        task.message_id = request.message_id;
        if !self.store.insert_task(&task).await? {
            return Err(TaskWriteError::AlreadyExists);
        }
        tracing::info!(
            task_id = %task.task_id,
            task_type = task.task_type.as_deref(),
            continues_message = task.message_id.as_ref().map(MessageId::as_str),
            answers = request.tool_results.len(),
            "task created"
        );
        for answer in request.tool_results {
            task = self.change(&task.task_id, TaskChange::Tool(answer)).await?;
        }
        Ok(task)
    }

    /// The task a chat client resuming `chat_id` follows, as it is now:
    /// the chat's newest task that `principal` may see, while it is
    /// unfinished; `None` when it has finished or the chat has none. An
    /// older task still running is an earlier turn's answer (its producer
    /// gone, say): streamed to a resuming chat it would appear as the
    /// newest reply, after the answer that replaced it. The store decides
    /// which task is newest: it is the one truth across restarts and
    /// instances.
    #[tracing::instrument(name = "task.chat_lookup", skip_all, fields(chat_id = %chat_id))]
    pub async fn running_in_chat(
        &self,
        principal: &Principal,
        chat_id: &ChatId,
    ) -> Result<Option<Task>, TaskWriteError> {
        let projects = principal.projects.to_list();
        let newest = match self
            .store
            .chat_task(chat_id, ChatTasks::InProjects(projects))
            .await?
        {
            // A chat with a task in a project the caller may see is that
            // project's: a task without a project (which any publisher may
            // create, in any chat) never stands in for its tasks, so
            // another tenant cannot put its text in this chat.
            Some(task) => task,
            None => match self
                .store
                .chat_task(chat_id, ChatTasks::Unprojected)
                .await?
            {
                Some(task) => task,
                None => return Ok(None),
            },
        };
        if newest.status.is_terminal() {
            return Ok(None);
        }
        // This instance may hold it fresher than its row (text being
        // written, or the end not yet committed).
        match self.visible(principal, &newest.task_id).await {
            Ok(task) if !task.status.is_terminal() => Ok(Some(task)),
            Ok(_) | Err(TaskWriteError::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// [`Self::change`] of a task `principal` may write to.
    pub async fn change_visible(
        &self,
        principal: &Principal,
        task_id: &TaskId,
        change: TaskChange,
    ) -> Result<Task, TaskWriteError> {
        self.change_within(task_id, change, principal.write_access())
            .await
    }

    /// Applies `change` (not text: see [`Self::append`]) and stores its
    /// events; returns the task as stored.
    #[tracing::instrument(name = "task.change", skip_all, fields(task_id = %task_id))]
    pub async fn change(
        &self,
        task_id: &TaskId,
        change: TaskChange,
    ) -> Result<Task, TaskWriteError> {
        self.change_within(task_id, change, WriteAccess::all())
            .await
    }

    /// [`Self::change`] of a task in `access` (else `NotFound`).
    async fn change_within(
        &self,
        task_id: &TaskId,
        change: TaskChange,
        access: WriteAccess,
    ) -> Result<Task, TaskWriteError> {
        let completes = matches!(
            change,
            TaskChange::Complete { .. }
                | TaskChange::Update {
                    status: Some(TaskStatus::Completed),
                    ..
                }
        );
        // Metered once written, from what the producer said of the step.
        let step_end = match &change {
            TaskChange::StepEnd { result } => Some(
                result
                    .as_ref()
                    .map(AnswerEnd::in_result)
                    .unwrap_or_default(),
            ),
            _ => None,
        };
        let written = self.write(task_id, Writing::Change(change), access).await?;
        if let Some(end) = step_end {
            self.metrics.record_step_end(&end);
        }
        if completes {
            let result = written.task.result.as_ref();
            let end = result.map(AnswerEnd::in_result).unwrap_or_default();
            self.metrics.record_task_finish(&end);
        }
        Ok(Arc::unwrap_or_clone(written.task))
    }

    /// Appends text; a delta whose `seq` is at or below the task's last
    /// accepted one is ignored. Answers once the text is stored.
    pub async fn append(
        &self,
        task_id: &TaskId,
        deltas: Vec<Delta>,
    ) -> Result<TaskWritten, TaskWriteError> {
        self.append_within(task_id, deltas, WriteAccess::all(), None)
            .await
    }

    /// Queues `deltas` for a streamed upload now, held in the task's queue
    /// until `hold_until` at the latest (its coalescing window; the upload
    /// releases it sooner, see [`Self::release_text`]), unless another
    /// write queues behind it or the instance drains: from now on it comes
    /// before anything written to the task after it. Answers once stored.
    pub(super) fn queue_text(
        &self,
        task_id: &TaskId,
        deltas: Vec<Delta>,
        hold_until: std::time::Instant,
    ) -> WriteAnswer {
        let writing = Writing::Text {
            deltas,
            hold_until: Some(hold_until),
        };
        self.send_write(task_id, writing, WriteAccess::all())
    }

    /// Writes the text an upload queued with [`Self::queue_text`] now, as
    /// one event.
    pub(super) async fn release_text(&self, task_id: &TaskId) -> Result<(), TaskWriteError> {
        self.append(task_id, Vec::new()).await.map(drop)
    }

    /// [`Self::append`] to a task in `access` (else `NotFound`).
    async fn append_within(
        &self,
        task_id: &TaskId,
        deltas: Vec<Delta>,
        access: WriteAccess,
        hold_until: Option<std::time::Instant>,
    ) -> Result<TaskWritten, TaskWriteError> {
        self.write(task_id, Writing::Text { deltas, hold_until }, access)
            .await
    }

    /// Hands `writing` to LiveTasks and waits for its answer.
    async fn write(
        &self,
        task_id: &TaskId,
        writing: Writing,
        access: WriteAccess,
    ) -> Result<TaskWritten, TaskWriteError> {
        self.send_write(task_id, writing, access).await
    }

    /// Hands `writing` to LiveTasks now; its answer to await.
    fn send_write(&self, task_id: &TaskId, writing: Writing, access: WriteAccess) -> WriteAnswer {
        let (reply, answer) = oneshot::channel();
        self.live.do_send(WriteTask {
            task_id: task_id.clone(),
            writing,
            access,
            reply,
        });
        WriteAnswer(answer)
    }

    /// [`Self::append`] to a task `principal` may write to.
    pub async fn append_visible(
        &self,
        principal: &Principal,
        task_id: &TaskId,
        deltas: Vec<Delta>,
    ) -> Result<TaskWritten, TaskWriteError> {
        self.append_within(task_id, deltas, principal.write_access(), None)
            .await
    }

    /// Claims the task's upload on this instance: its status as writes
    /// change it, and whether a newer upload took over; `None` for a task
    /// that cannot be loaded.
    pub async fn open_upload(&self, task_id: &TaskId) -> Option<UploadWatch> {
        self.live
            .send(OpenUpload {
                task_id: task_id.clone(),
            })
            .await
            .ok()
            .flatten()
    }
}

/// The answer to a write handed to LiveTasks: the actor gone before
/// answering means shutting down.
pub(super) struct WriteAnswer(oneshot::Receiver<Result<TaskWritten, TaskWriteError>>);

impl std::future::IntoFuture for WriteAnswer {
    type Output = Result<TaskWritten, TaskWriteError>;
    type IntoFuture = futures_util::future::Map<
        oneshot::Receiver<Result<TaskWritten, TaskWriteError>>,
        fn(Result<Result<TaskWritten, TaskWriteError>, oneshot::error::RecvError>) -> Self::Output,
    >;

    fn into_future(self) -> Self::IntoFuture {
        use futures_util::FutureExt as _;
        self.0.map(|answer| {
            answer.unwrap_or(Err(TaskWriteError::Persist(PersistError::ShuttingDown)))
        })
    }
}
