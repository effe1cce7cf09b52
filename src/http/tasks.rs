//! The task API: `/tasks/{id}` (GET, HEAD, PATCH), `/text`,
//! `/complete`, `/fail`, `/cancel`, and the task's stream `/events`.

use actix_web::{HttpRequest, HttpResponse, get, head, patch, post, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    extract::{
        Authenticated, JsonBody, OpenStream, OptionalJsonBody, Publish, Query, Subscribe,
        TicketQuery,
    },
    streams::{StreamQuery, event_stream_response, resume_point},
};
use crate::{
    auth::Principal,
    domain::{EventId, Task, TaskChange, TaskId, TaskStatus},
    error::ApiError,
    services::tasks::task_json,
    state::AppState,
    stream::{StreamFormat, StreamSocket},
};

pub(super) fn task_id(raw: &str) -> Result<TaskId, ApiError> {
    Ok(TaskId::parse(raw)?)
}

/// A task's JSON, as answered by the task endpoints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    pub task_id: String,
    pub status: TaskStatus,
    pub progress: f64,
    pub stage: Option<String>,
    pub message: Option<String>,
    /// What the producer said the task produced. A task completed by a
    /// model provider's stream (`POST /tasks/{id}/stream`) holds why the
    /// answer stopped and the tokens it took: `finish_reason` (the AI
    /// SDK's words: `stop`, `length`, `content-filter`, `tool-calls`,
    /// `error`, `other`), `provider_finish_reason`, `usage`
    /// (`input_tokens`, `output_tokens`, `total_tokens`), each when the
    /// provider said it.
    #[schema(example = json!({"finish_reason": "length", "provider_finish_reason": "max_tokens", "usage": {"input_tokens": 12, "output_tokens": 1024}}))]
    pub result: Option<Value>,
    pub error: Option<String>,
    pub project_id: Option<String>,
    pub task_type: Option<String>,
    pub chat_id: Option<String>,
    /// The assistant message the task writes, as given at its creation
    /// (`null`: the task id is the message's id).
    pub message_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The task `raw_id` names, if `principal` may see it.
pub(super) async fn visible_task(
    state: &AppState,
    principal: &Principal,
    raw_id: &str,
) -> Result<Task, ApiError> {
    Ok(state.tasks.visible(principal, &task_id(raw_id)?).await?)
}

/// A task's current state.
#[utoipa::path(
    tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task", body = TaskView),
        (status = 400, description = "Invalid task id", body = crate::error::ErrorBody),
        (status = 404, description = "No such task", body = crate::error::ErrorBody),
    )
)]
#[get("/tasks/{id}")]
pub async fn get_task(
    state: web::Data<AppState>,
    id: web::Path<String>,
    auth: Authenticated<Subscribe>,
) -> Result<HttpResponse, ApiError> {
    let task = visible_task(&state, &auth.principal, &id).await?;
    Ok(HttpResponse::Ok().json(task_json(&task)))
}

/// A task's status in headers: `X-Task-Status`, `X-Task-Progress`.
#[utoipa::path(
    tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "Status in X-Task-Status and X-Task-Progress"),
        (status = 404, description = "No such task"),
    )
)]
#[head("/tasks/{id}")]
pub async fn head_task(
    state: web::Data<AppState>,
    id: web::Path<String>,
    auth: Authenticated<Subscribe>,
) -> Result<HttpResponse, ApiError> {
    let task = visible_task(&state, &auth.principal, &id).await?;
    // The GET's body, which the server leaves unsent: the headers then say
    // what a GET's do (RFC 9110 section 9.3.2), `Content-Length` included.
    Ok(HttpResponse::Ok()
        .insert_header(("X-Task-Status", task.status.as_str()))
        .insert_header(("X-Task-Progress", task.progress.to_string()))
        .json(task_json(&task)))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    /// pending, running, completed, failed or cancelled.
    #[schema(value_type = Option<crate::domain::TaskStatus>)]
    pub status: Option<String>,
    /// 0–100; never backwards unless `force`.
    #[schema(minimum = 0, maximum = 100)]
    pub progress: Option<f64>,
    pub stage: Option<String>,
    pub message: Option<String>,
    /// Allow progress to go backwards (a new phase, a retry).
    pub force: Option<bool>,
}

async fn apply(
    state: &AppState,
    principal: &Principal,
    raw_id: &str,
    change: TaskChange,
) -> Result<Task, ApiError> {
    let id = task_id(raw_id)?;
    Ok(state.tasks.change_visible(principal, &id, change).await?)
}

/// Update a task; emits `progress`.
#[utoipa::path(
    tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    request_body = UpdateTask,
    responses(
        (status = 200, description = "The updated task", body = TaskView),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 404, description = "No such task", body = crate::error::ErrorBody),
        (status = 409, description = "Cancelled or finished", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid progress or status, or a wrong field type", body = crate::error::ErrorBody),
    )
)]
#[patch("/tasks/{id}")]
pub async fn update_task(
    state: web::Data<AppState>,
    id: web::Path<String>,
    auth: Authenticated<Publish>,
    body: JsonBody<UpdateTask>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0;
    let change = TaskChange::Update {
        status: request
            .status
            .as_deref()
            .map(TaskStatus::parse)
            .transpose()?,
        progress: request.progress,
        stage: request.stage,
        message: request.message,
        force: request.force.unwrap_or(false),
    };
    let task = apply(&state, &auth.principal, &id, change).await?;
    Ok(HttpResponse::Ok().json(task_json(&task)))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// Any JSON. A `finish_reason` in the AI SDK's words (`length`, …)
    /// reaches the UI message stream's viewers as the message's
    /// `metadata.finishReason`.
    pub result: Option<Value>,
}

/// Complete a task; emits `complete`.
#[utoipa::path(
    tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    request_body(content = Option<CompleteRequest>, description = "Optional result"),
    responses(
        (status = 200, description = "The completed task", body = TaskView),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 409, description = "Cancelled or finished", body = crate::error::ErrorBody),
        (status = 422, description = "A body that is not a JSON object", body = crate::error::ErrorBody),
    )
)]
#[post("/tasks/{id}/complete")]
pub async fn complete_task(
    state: web::Data<AppState>,
    id: web::Path<String>,
    auth: Authenticated<Publish>,
    body: OptionalJsonBody<CompleteRequest>,
) -> Result<HttpResponse, ApiError> {
    let result = body.0.unwrap_or_default().result;
    let task = apply(
        &state,
        &auth.principal,
        &id,
        TaskChange::Complete { result },
    )
    .await?;
    Ok(HttpResponse::Ok().json(task_json(&task)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    pub error: String,
}

/// Fail a task; emits `error`.
#[utoipa::path(
    tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    request_body = FailRequest,
    responses(
        (status = 200, description = "The failed task", body = TaskView),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 409, description = "Cancelled or finished", body = crate::error::ErrorBody),
        (status = 422, description = "A missing field or a wrong field type", body = crate::error::ErrorBody),
    )
)]
#[post("/tasks/{id}/fail")]
pub async fn fail_task(
    state: web::Data<AppState>,
    id: web::Path<String>,
    auth: Authenticated<Publish>,
    body: JsonBody<FailRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = TaskChange::Fail {
        error: body.0.error,
    };
    let task = apply(&state, &auth.principal, &id, change).await?;
    Ok(HttpResponse::Ok().json(task_json(&task)))
}

/// Cancel a task; emits `error` with `cancelled: true`. The producer's next
/// write gets 409 `task_cancelled`.
#[utoipa::path(
    tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "The cancelled task", body = TaskView),
        (status = 409, description = "Already cancelled or finished", body = crate::error::ErrorBody),
    )
)]
#[post("/tasks/{id}/cancel")]
pub async fn cancel_task(
    state: web::Data<AppState>,
    id: web::Path<String>,
    auth: Authenticated<Publish>,
) -> Result<HttpResponse, ApiError> {
    let task = apply(&state, &auth.principal, &id, TaskChange::Cancel).await?;
    Ok(HttpResponse::Ok().json(task_json(&task)))
}

/// What a task stream's request asks for, checked: the task (visible to
/// the caller) and the resume point; `None` when the task is finished and
/// the client has all of it (204). `GET` opens it; `HEAD` answers whether
/// it would.
pub(super) async fn checked_task_stream(
    req: &HttpRequest,
    state: &AppState,
    id: &str,
    query: &StreamQuery,
    principal: &Principal,
) -> Result<Option<(Task, Option<EventId>)>, ApiError> {
    let task = visible_task(state, principal, id).await?;
    let resume_after = resume_point(req, query)?;
    let subscription = state.streams.task_subscription(principal, &task);
    if let (true, Some(after)) = (task.status.is_terminal(), resume_after)
        && !state.streams.has_missed(&subscription, after).await?
    {
        return Ok(None);
    }
    Ok(Some((task, resume_after)))
}

/// The task's stream: `connected`, its current state as `progress`, its
/// stored events (all of them on a first connect, those after
/// `Last-Event-ID` on a resume), then live ones. A finished task's stream
/// ends after its last event; resuming it with nothing new answers 204, which
/// tells EventSource to stop reconnecting.
#[utoipa::path(
    tag = "tasks",
    params(
        ("id" = String, Path, description = "Task id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (digits)", pattern = "^[0-9]{1,19}$"),
        ("last_event_id" = Option<String>, Query, description = "Resume after this id (the Last-Event-ID header wins)", pattern = "^[0-9]{1,19}$"),
        TicketQuery,
    ),
    responses(
        (status = 200, description = "The task's event stream", content_type = "text/event-stream", body = String),
        (status = 204, description = "The task is finished and the client has every event"),
        (status = 404, description = "No such task", body = crate::error::ErrorBody),
    )
)]
#[get("/tasks/{id}/events")]
pub async fn task_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated<OpenStream>,
    id: web::Path<String>,
    query: Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let principal = auth.principal;
    let Some((task, resume_after)) =
        checked_task_stream(&req, &state, &id, &query, &principal).await?
    else {
        return Ok(super::streams::no_stream());
    };
    // Charged only for a stream the Registry admits (not for a 404, a 204
    // or a refusal).
    let (_, body) = state
        .streams
        .open_task(
            &principal,
            &task,
            resume_after.unwrap_or(EventId(0)),
            StreamFormat::Sse,
            req.conn_data::<StreamSocket>().copied(),
            state.limits.stream_charge(&req, &principal),
        )
        .await?;
    Ok(event_stream_response(&req, body))
}
