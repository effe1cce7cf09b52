//! `TaskService`: the task API's use cases. A change is applied to the task
//! row with optimistic concurrency (retried if another producer got there
//! first), then its event is published through the normal path (stored,
//! then delivered), carrying `task_id` so task streams receive it.

use serde_json::{Value, json};

use crate::{
    actors::persister::PersistError,
    auth::Principal,
    domain::{
        ChatId, EventData, EventId, EventType, NewEvent, ProjectId, Task, TaskChange, TaskError,
        TaskId, TaskStatus, now_ms,
    },
    services::events::EventService,
    store::{EventStore, StoreError},
    telemetry::Metrics,
};

/// Attempts at applying a change when concurrent producers race on one task.
const MAX_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum TaskServiceError {
    #[error("no task with this id")]
    NotFound,
    #[error("a task with this id already exists")]
    AlreadyExists,
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("the task changed concurrently too often; retry")]
    Contended,
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

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
}

#[derive(Clone)]
pub struct TaskService {
    store: EventStore,
    events: EventService,
    metrics: Metrics,
}

/// The JSON of a task, as answered by the API and carried by `progress` events.
pub fn task_json(task: &Task) -> Value {
    json!({
        "task_id": task.task_id.as_str(),
        "status": task.status,
        "progress": task.progress,
        "stage": task.stage,
        "message": task.message,
        "result": task.result,
        "error": task.error,
        "project_id": task.project_id,
        "task_type": task.task_type,
        "chat_id": task.chat_id.as_ref().map(ChatId::as_str),
        "created_at": crate::domain::rfc3339(task.created_at_ms),
        "updated_at": crate::domain::rfc3339(task.updated_at_ms),
    })
}

impl TaskService {
    pub fn new(store: EventStore, events: EventService, metrics: Metrics) -> Self {
        Self {
            store,
            events,
            metrics,
        }
    }

    pub async fn create(&self, request: NewTask) -> Result<Task, TaskServiceError> {
        let mut task = Task::new(
            request.task_id.unwrap_or_else(TaskId::generate),
            request.stage,
            request.message,
            request.project_id,
            now_ms(),
        );
        task.task_type = request.task_type;
        task.chat_id = request.chat_id;
        if !self.store.insert_task(&task).await? {
            return Err(TaskServiceError::AlreadyExists);
        }
        tracing::info!(task_id = %task.task_id, task_type = task.task_type.as_deref(), "task created");
        Ok(task)
    }

    pub async fn get(&self, task_id: &TaskId) -> Result<Task, TaskServiceError> {
        self.store
            .task(task_id)
            .await?
            .ok_or(TaskServiceError::NotFound)
    }

    /// The task, if `principal` may see it. A task outside the caller's
    /// projects answers exactly as an unknown one, so task ids of other
    /// tenants cannot be probed.
    pub async fn visible(
        &self,
        principal: &Principal,
        task_id: &TaskId,
    ) -> Result<Task, TaskServiceError> {
        let task = self.get(task_id).await?;
        match &task.project_id {
            Some(project) if !principal.may_access(project) => Err(TaskServiceError::NotFound),
            _ => Ok(task),
        }
    }

    /// [`Self::change`] of a task `principal` may see.
    pub async fn change_visible(
        &self,
        principal: &Principal,
        task_id: &TaskId,
        change: TaskChange,
        texts: Vec<String>,
    ) -> Result<(Task, Vec<Option<EventId>>), TaskServiceError> {
        let task = self.visible(principal, task_id).await?;
        self.change(&task.task_id, change, texts).await
    }

    /// Applies `change` and publishes its events; returns the new task and
    /// the ids of the published events.
    #[tracing::instrument(name = "task.change", skip_all, fields(task_id = %task_id))]
    pub async fn change(
        &self,
        task_id: &TaskId,
        change: TaskChange,
        texts: Vec<String>,
    ) -> Result<(Task, Vec<Option<EventId>>), TaskServiceError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.get(task_id).await?;
            // Strictly later than the last write, so the version always moves.
            let now = now_ms().max(current.updated_at_ms + 1);
            let next = current.apply(&change, now)?;
            if !self.store.update_task(&next, current.updated_at_ms).await? {
                continue;
            }
            if change == TaskChange::Text {
                self.record_token_timing(&current, &next);
            }
            let events = self.events_for(&next, &change, texts);
            let ids = self.events.publish(events).await?;
            if next.status.is_terminal() {
                tracing::info!(task_id = %task_id, status = %next.status, "task finished");
            }
            return Ok((next, ids));
        }
        Err(TaskServiceError::Contended)
    }

    /// Time to first token (from creation) or the gap since the previous
    /// token, labelled with the task's type.
    fn record_token_timing(&self, before: &Task, after: &Task) {
        let task_type = after.task_type.as_deref().unwrap_or("untyped");
        let now = after.last_token_at_ms.unwrap_or(after.updated_at_ms);
        match before.last_token_at_ms {
            None => self.metrics.record_time_to_first_token(
                task_type,
                (now - before.created_at_ms) as f64 / 1000.0,
            ),
            Some(previous) => self
                .metrics
                .record_token_gap(task_type, (now - previous) as f64 / 1000.0),
        }
    }

    fn events_for(&self, task: &Task, change: &TaskChange, texts: Vec<String>) -> Vec<NewEvent> {
        let task_ref = task.task_id.as_ref_id();
        let event = |event_type: &str, data: Value| NewEvent {
            event_type: EventType::parse(event_type).expect("task event types are well formed"),
            data: EventData::trusted(data),
            project_id: task.project_id.clone(),
            user_id: None,
            task_id: Some(task_ref.clone()),
            persist: true,
            idempotency_key: None,
            published_at_ms: now_ms(),
            trace_context: None,
        };
        let id = task.task_id.as_str();
        match change {
            // A PATCH that finishes the task ends it like the dedicated
            // endpoints do, so watchers see `complete`/`error` and close.
            TaskChange::Update { .. } => {
                let mut events = vec![event("progress", task_json(task))];
                match task.status {
                    TaskStatus::Completed => events.push(event(
                        "complete",
                        json!({ "task_id": id, "status": "completed", "result": task.result }),
                    )),
                    TaskStatus::Failed => events.push(event(
                        "error",
                        json!({ "task_id": id, "status": "failed", "error": task.error }),
                    )),
                    TaskStatus::Cancelled => events.push(event(
                        "error",
                        json!({ "task_id": id, "status": "cancelled", "error": "cancelled", "cancelled": true }),
                    )),
                    TaskStatus::Pending | TaskStatus::Running => {}
                }
                events
            }
            TaskChange::Text => texts
                .into_iter()
                .map(|delta| event("text", json!({ "task_id": id, "delta": delta })))
                .collect(),
            TaskChange::Complete { result } => {
                vec![event(
                    "complete",
                    json!({ "task_id": id, "status": "completed", "result": result }),
                )]
            }
            TaskChange::Fail { error } => {
                vec![event(
                    "error",
                    json!({ "task_id": id, "status": "failed", "error": error }),
                )]
            }
            TaskChange::Cancel => vec![event(
                "error",
                json!({ "task_id": id, "status": "cancelled", "error": "cancelled", "cancelled": true }),
            )],
        }
    }

    /// Fails unfinished tasks (of `task_type`, if given) whose producer has
    /// been silent since `silent_since_ms`, with `reason`; returns how many.
    pub async fn fail_silent(
        &self,
        silent_since_ms: i64,
        task_type: Option<&str>,
        reason: &str,
    ) -> Result<usize, TaskServiceError> {
        let mut failed = 0;
        for task in self
            .store
            .silent_tasks(silent_since_ms, task_type, 100)
            .await?
        {
            let change = TaskChange::Fail {
                error: reason.to_owned(),
            };
            match self.change(&task.task_id, change, Vec::new()).await {
                Ok(_) => {
                    failed += 1;
                    tracing::warn!(task_id = %task.task_id, reason, "failed a task whose producer went silent");
                }
                // Finished or written meanwhile: nothing to do.
                Err(TaskServiceError::Task(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(failed)
    }
}
