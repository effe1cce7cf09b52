//! `POST /tasks/{id}/stream`: one upload per generation.

use actix_web::{HttpRequest, HttpResponse, http::header, post, web};
use serde::Serialize;

use super::extract::{Authenticated, BodyLimit, Publish};
use crate::{
    domain::{TaskId, UploadFormat, task_json},
    error::{ApiError, ErrorCode},
    services::uploads::UploadLimits,
    state::AppState,
};

/// What an upload did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadAnswer {
    /// The task after the upload.
    #[schema(value_type = crate::http::tasks::TaskView)]
    pub task: serde_json::Value,
    /// Deltas accepted (a retried `seq` is not counted).
    pub deltas: u64,
    /// Characters of text they carried.
    pub chars: u64,
}

/// Upload a generation as it is produced: a streamed body, applied line by
/// line as it arrives, so viewers see tokens live. `Content-Type` picks the
/// format: `application/x-ndjson` (`{"delta", "seq"?}`, `{"progress",
/// "stage"?, "message"?}`, `{"complete": {"result"?}}`, `{"fail":
/// {"error"}}`), or `text/event-stream` carrying an OpenAI Chat Completions
/// stream or an AI SDK UI message stream, piped straight in.
#[utoipa::path(
    tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    request_body(content = String, content_type = "application/x-ndjson", description = "NDJSON lines, or text/event-stream (OpenAI or AI SDK)"),
    responses(
        (status = 200, description = "The body ended; everything in it is applied", body = UploadAnswer),
        (status = 404, description = "No such task", body = crate::error::ErrorBody),
        (status = 408, description = "The producer sent nothing for --body-read-timeout-secs", body = crate::error::ErrorBody),
        (status = 409, description = "The task was cancelled (answered at once, the upload closed) or is finished", body = crate::error::ErrorBody),
        (status = 413, description = "A line over --max-body-bytes", body = crate::error::ErrorBody),
        (status = 415, description = "Neither NDJSON nor an event stream", body = crate::error::ErrorBody),
        (status = 422, description = "A malformed line, named; the lines before it stay applied", body = crate::error::ErrorBody),
    )
)]
#[post("/tasks/{id}/stream")]
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    auth: Authenticated<Publish>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let task_id = TaskId::parse(&id)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = UploadFormat::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the generation as application/x-ndjson or text/event-stream",
        )
    })?;
    let body_limit = req
        .app_data::<web::Data<BodyLimit>>()
        .map(|limit| *limit.get_ref())
        .unwrap_or_default();
    let limits = UploadLimits {
        max_line_bytes: body_limit.max_bytes,
        idle: body_limit.read_timeout,
    };
    let summary = state
        .tasks
        .ingest(&auth.principal, &task_id, format, body, limits)
        .await?;
    Ok(HttpResponse::Ok().json(UploadAnswer {
        task: task_json(&summary.task),
        deltas: summary.deltas,
        chars: summary.chars,
    }))
}
