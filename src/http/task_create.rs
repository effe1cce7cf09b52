//! `POST /tasks`: a task is made, in its project and chat, for the
//! message it writes.

use actix_web::{HttpResponse, post, web};
use serde::Deserialize;

use super::{
    extract::{Authenticated, OptionalJsonBody, Publish, project_field},
    publish::CONFINED,
    tasks::{TaskView, task_id},
};
use crate::{
    domain::{ChatId, MessageId, parse_task_type},
    error::{ApiError, ErrorCode},
    services::{
        generation_input::{ToolResultBody, continued_answers},
        tasks::{NewTask, task_json},
    },
    state::AppState,
};

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// `[A-Za-z0-9_-]{1,128}`; generated when absent.
    pub task_id: Option<String>,
    /// `[a-z0-9_.-]{1,64}`, e.g. `chat`: labels the task's latency metrics.
    pub task_type: Option<String>,
    pub stage: Option<String>,
    pub message: Option<String>,
    pub project_id: Option<String>,
    /// `[A-Za-z0-9_-]{1,128}`: the conversation the generation belongs to
    /// (`GET /chats/{chat_id}/stream` follows its newest task while it runs).
    pub chat_id: Option<String>,
    /// `[A-Za-z0-9_-]{1,128}`: the assistant message the task writes (its
    /// UI message stream's `messageId`; the task id when absent). A turn
    /// that continues a message (after a tool approval) names that message.
    pub message_id: Option<String>,
    /// With `message_id`: the answers its calls got outside the broker
    /// (the page's own tools), as upload `tool_result` lines (`{"id",
    /// "output"? | "error"?}`, at most 64), stored first in the task.
    #[schema(value_type = Option<Vec<Object>>)]
    pub tool_results: Option<Vec<ToolResultBody>>,
}

/// Create a task.
#[utoipa::path(
    tag = "tasks",
    request_body(content = Option<CreateTask>, description = "Optional"),
    responses(
        (status = 201, description = "The new task", body = TaskView),
        (status = 400, description = "Invalid task, chat or message id, or malformed JSON", body = crate::error::ErrorBody),
        (status = 403, description = "No publish scope, a project outside the token, or none where the broker keeps tokens within their projects", body = crate::error::ErrorBody),
        (status = 409, description = "The id is taken", body = crate::error::ErrorBody),
        (status = 422, description = "A wrong field type, an invalid task_type, or tool_results that are not answers, or without message_id", body = crate::error::ErrorBody),
    )
)]
#[post("/tasks")]
pub async fn create_task(
    state: web::Data<AppState>,
    auth: Authenticated<Publish>,
    body: OptionalJsonBody<CreateTask>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0.unwrap_or_default();
    let id = request.task_id.as_deref().map(task_id).transpose()?;
    let project_id = project_field(&auth.principal, request.project_id.as_deref())?;
    if project_id.is_none() && auth.principal.confined {
        return Err(ApiError::new(ErrorCode::Forbidden, CONFINED));
    }
    let task = state
        .tasks
        .create(NewTask {
            task_id: id,
            task_type: request
                .task_type
                .as_deref()
                .map(parse_task_type)
                .transpose()?,
            stage: request.stage,
            message: request.message,
            project_id,
            chat_id: request.chat_id.as_deref().map(ChatId::parse).transpose()?,
            message_id: request
                .message_id
                .as_deref()
                .map(MessageId::parse)
                .transpose()?,
            tool_results: continued_answers(
                request.message_id.is_some(),
                request.tool_results.unwrap_or_default(),
            )
            .map_err(|error| ApiError::new(ErrorCode::InvalidField, error))?,
        })
        .await?;
    Ok(HttpResponse::Created().json(task_json(&task)))
}
