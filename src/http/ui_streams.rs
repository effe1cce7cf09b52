//! A generation as the AI SDK reads it: `GET /tasks/{id}/ui-message-stream`
//! and `GET /chats/{chat_id}/stream`, the URL `useChat({ resume: true })`
//! reconnects to (through `DefaultChatTransport`'s
//! `prepareReconnectToStreamRequest`). Both are the task's stream written
//! as a UI message stream (see `domain::ui_message_stream`); the chat's
//! answers 204 when it has no running task, which the transport reads as
//! "nothing to resume".

use actix_web::{
    HttpRequest, HttpResponse, get,
    http::header::{HeaderName, HeaderValue},
    web,
};
use serde::Deserialize;

use super::{
    extract::{Authenticated, OpenStream, Query, TicketQuery},
    streams::event_stream_response,
    tasks::visible_task,
};
use crate::{
    auth::Principal,
    domain::{AiSdkMajor, ChatId, Task, UI_MESSAGE_STREAM_HEADER},
    error::{ApiError, ErrorCode},
    state::AppState,
    stream::{MessageReader, StreamSocket},
};

/// How the viewer reads the stream.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UiStreamQuery {
    /// The major version of the `ai` package the client reads with (5 or
    /// later; 5 when unset): from 6 on, the `finish` part carries its own
    /// `finishReason`, which `useChat`'s `onFinish` passes on (v5 refuses
    /// a part with a field it does not know).
    #[param(value_type = Option<u16>, minimum = 5, maximum = 65535)]
    pub ai_sdk: Option<String>,
}

impl UiStreamQuery {
    pub(super) fn client(&self) -> Result<AiSdkMajor, ApiError> {
        match self.ai_sdk.as_deref() {
            None => Ok(AiSdkMajor::OLDEST),
            Some(raw) => AiSdkMajor::parse(raw).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    "ai_sdk is the major version of the ai package the client reads with: \
                     a whole number from 5 to 65535",
                )
            }),
        }
    }
}

/// Follow a task as an AI SDK UI message stream (`x-vercel-ai-ui-message-stream: v1`).
///
/// Every open begins with `start`, then the text so far as one `text-delta`
/// (after `text-start`), then the task's progress as `data-progress`, then
/// live parts; it ends with `finish` (completed), `error` (failed) or
/// `abort` (cancelled, the text so far kept), then `data: [DONE]`. A
/// finished task's stream is its whole message and its end.
#[utoipa::path(
    tag = "tasks",
    params(("id" = String, Path, description = "Task id"), UiStreamQuery, TicketQuery),
    responses(
        (status = 200, description = "The task's UI message stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid task id, or `ai_sdk` not a major version of 5 or later", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "No subscribe scope", body = crate::error::ErrorBody),
        (status = 404, description = "No such task (or one outside the token's projects)", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limit or per-user stream cap reached; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "Connection limit reached or shutting down", body = crate::error::ErrorBody),
    )
)]
#[get("/tasks/{id}/ui-message-stream")]
pub async fn task_ui_message_stream(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated<OpenStream>,
    id: web::Path<String>,
    query: Query<UiStreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let client = query.client()?;
    let task = visible_task(&state, &auth.principal, &id).await?;
    ui_message_stream(
        &req,
        &state,
        &auth.principal,
        &task,
        MessageReader::Holding,
        client,
    )
    .await
}

/// Resume a chat: the UI message stream of the chat's newest task, while it runs
/// (created with this `chat_id`, visible to the caller), or 204 when it has
/// none. A chat with a task in a project the caller's token grants follows
/// only its tasks in granted projects (a task without a project never
/// stands in for them).
#[utoipa::path(
    tag = "tasks",
    params(("chat_id" = String, Path, description = "Chat id, as given to POST /tasks"), UiStreamQuery, TicketQuery),
    responses(
        (status = 200, description = "The UI message stream of the chat's newest task, which has not finished", content_type = "text/event-stream", body = String),
        (status = 204, description = "The chat has no running task: nothing to resume"),
        (status = 400, description = "Invalid chat id, or `ai_sdk` not a major version of 5 or later", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "No subscribe scope", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limit or per-user stream cap reached; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "Connection limit reached or shutting down", body = crate::error::ErrorBody),
    )
)]
#[get("/chats/{chat_id}/stream")]
pub async fn chat_stream(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated<OpenStream>,
    chat_id: web::Path<String>,
    query: Query<UiStreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let client = query.client()?;
    match running_in_chat(&state, &auth.principal, &chat_id).await? {
        None => Ok(super::streams::no_stream()),
        // A resuming chat rebuilds the message from nothing: a turn that
        // continues a message comes after its earlier parts.
        Some(task) => {
            let reader = MessageReader::Rebuilding;
            ui_message_stream(&req, &state, &auth.principal, &task, reader, client).await
        }
    }
}

/// The running task the chat `raw_chat_id` names for `principal` to follow,
/// if any.
pub(super) async fn running_in_chat(
    state: &AppState,
    principal: &Principal,
    raw_chat_id: &str,
) -> Result<Option<Task>, ApiError> {
    let chat_id = ChatId::parse(raw_chat_id)?;
    Ok(state.tasks.running_in_chat(principal, &chat_id).await?)
}

async fn ui_message_stream(
    req: &HttpRequest,
    state: &AppState,
    principal: &Principal,
    task: &Task,
    reader: MessageReader,
    client: AiSdkMajor,
) -> Result<HttpResponse, ApiError> {
    // The earlier tasks of the message a task continues: the reader is
    // sent them, or holds them and gets the answers to their calls.
    let earlier = state.tasks.earlier_in_message(task).await?;
    // Charged only for a stream the Registry admits (not for a 404, a 204
    // or a refusal).
    let body = state
        .streams
        .open_task_messages(
            principal,
            task,
            (&earlier, reader),
            client,
            req.conn_data::<StreamSocket>().copied(),
            state.limits.stream_charge(req, principal),
        )
        .await?;
    Ok(with_protocol_header(event_stream_response(req, body)))
}

/// A UI message stream's response: an event stream, and the header that
/// names its protocol to the AI SDK.
pub(super) fn with_protocol_header(mut response: HttpResponse) -> HttpResponse {
    let (name, value) = UI_MESSAGE_STREAM_HEADER;
    response.headers_mut().insert(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    );
    response
}
