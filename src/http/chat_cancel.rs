//! `POST /chats/{chat_id}/cancel`: stop a chat's current generation by its
//! chat, for a page that knows the chat but not the task its backend made
//! for the turn (after a reload, a continued turn's stream names only its
//! message).

use actix_web::{HttpResponse, post, web};

use super::{
    extract::{Authenticated, Publish},
    tasks::TaskView,
    ui_streams::running_in_chat,
};
use crate::{
    domain::TaskChange,
    error::{ApiError, ErrorCode},
    services::tasks::{TaskWriteError, task_json},
    state::AppState,
};

/// Cancel the chat's newest task while it runs (the one
/// `GET /chats/{chat_id}/stream` follows); emits `error` with
/// `cancelled: true`, as `POST /tasks/{id}/cancel`.
#[utoipa::path(
    tag = "tasks",
    params(("chat_id" = String, Path, description = "Chat id, as given to POST /tasks")),
    responses(
        (status = 200, description = "The cancelled task", body = TaskView),
        (status = 400, description = "Invalid chat id", body = crate::error::ErrorBody),
        (status = 404, description = "The chat has no running task (none, or its newest has finished, or it is outside the token's projects)", body = crate::error::ErrorBody),
        (status = 409, description = "Its newest task finished meanwhile", body = crate::error::ErrorBody),
    )
)]
#[post("/chats/{chat_id}/cancel")]
pub async fn cancel_chat(
    state: web::Data<AppState>,
    chat_id: web::Path<String>,
    auth: Authenticated<Publish>,
) -> Result<HttpResponse, ApiError> {
    let nothing_to_cancel = || {
        ApiError::new(
            ErrorCode::TaskNotFound,
            "the chat has no running task to cancel",
        )
    };
    let Some(running) = running_in_chat(&state, &auth.principal, &chat_id).await? else {
        return Err(nothing_to_cancel());
    };
    // A task the caller may follow but not write (a shared task, under
    // `--publish-within-projects`) is, to its cancel, none: the same words.
    let task = state
        .tasks
        .change_visible(&auth.principal, &running.task_id, TaskChange::Cancel)
        .await
        .map_err(|error| match error {
            TaskWriteError::NotFound => nothing_to_cancel(),
            other => other.into(),
        })?;
    tracing::info!(chat_id = %chat_id, task_id = %task.task_id, "chat's generation cancelled");
    Ok(HttpResponse::Ok().json(task_json(&task)))
}
