//! `HEAD` on the stream URLs (RFC 9110 §9.3.2: a server that answers `GET`
//! answers `HEAD`): the checks a `GET` makes before it opens anything (the
//! token, the filter, the resume point, the task) and the status and
//! headers it would answer, with no stream opened. What only opening tells
//! (the connection limit, the rate limits, the per-user cap) is not
//! checked, and nothing is charged. A stream ticket is for opening a
//! stream, once: `HEAD` takes a token.

use actix_web::{HttpRequest, HttpResponse, head, web};

use super::{
    extract::{Authenticated, Query, Subscribe},
    streams::{StreamQuery, checked_request, event_stream_head},
    tasks::{checked_task_stream, visible_task},
    ui_streams::{UiStreamQuery, running_in_chat, with_protocol_header},
};
use crate::{error::ApiError, state::AppState};

/// Whether `GET /sse/events` with this request would open a stream.
#[utoipa::path(
    tag = "streams",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (digits)", pattern = "^[0-9]{1,19}$"),
    ),
    responses(
        (status = 200, description = "A GET would open the stream (its headers, no body)"),
        (status = 400, description = "Non-numeric Last-Event-ID"),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "No subscribe scope, or project outside the token"),
        (status = 422, description = "Unknown event type"),
    )
)]
#[head("/sse/events")]
pub async fn events_head(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated<Subscribe>,
    query: Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    checked_request(&req, &state, &query, &auth.principal)?;
    Ok(event_stream_head(&req))
}

/// Whether `GET /tasks/{id}/events` with this request would open a stream.
#[utoipa::path(
    tag = "tasks",
    params(
        ("id" = String, Path, description = "Task id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (digits)", pattern = "^[0-9]{1,19}$"),
    ),
    responses(
        (status = 200, description = "A GET would open the task's stream (its headers, no body)"),
        (status = 204, description = "The task is finished and the client has every event"),
        (status = 404, description = "No such task"),
    )
)]
#[head("/tasks/{id}/events")]
pub async fn task_events_head(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated<Subscribe>,
    id: web::Path<String>,
    query: Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(
        match checked_task_stream(&req, &state, &id, &query, &auth.principal).await? {
            None => super::streams::no_stream(),
            Some(_) => event_stream_head(&req),
        },
    )
}

/// Whether `GET /tasks/{id}/ui-message-stream` would open a stream.
#[utoipa::path(
    tag = "tasks",
    params(("id" = String, Path, description = "Task id"), UiStreamQuery),
    responses(
        (status = 200, description = "A GET would open the task's UI message stream (its headers, no body)"),
        (status = 400, description = "Invalid task id, or `ai_sdk` not a major version of 5 or later"),
        (status = 404, description = "No such task (or one outside the token's projects)"),
    )
)]
#[head("/tasks/{id}/ui-message-stream")]
pub async fn task_ui_message_stream_head(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated<Subscribe>,
    id: web::Path<String>,
    query: Query<UiStreamQuery>,
) -> Result<HttpResponse, ApiError> {
    query.client()?;
    visible_task(&state, &auth.principal, &id).await?;
    Ok(with_protocol_header(event_stream_head(&req)))
}

/// Whether the chat has a running task to resume (`GET` would stream it).
#[utoipa::path(
    tag = "tasks",
    params(("chat_id" = String, Path, description = "Chat id, as given to POST /tasks"), UiStreamQuery),
    responses(
        (status = 200, description = "The chat has a running task (the headers of its UI message stream, no body)"),
        (status = 204, description = "The chat has no running task: nothing to resume"),
        (status = 400, description = "Invalid chat id, or `ai_sdk` not a major version of 5 or later"),
    )
)]
#[head("/chats/{chat_id}/stream")]
pub async fn chat_stream_head(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated<Subscribe>,
    chat_id: web::Path<String>,
    query: Query<UiStreamQuery>,
) -> Result<HttpResponse, ApiError> {
    query.client()?;
    Ok(
        match running_in_chat(&state, &auth.principal, &chat_id).await? {
            None => super::streams::no_stream(),
            Some(_) => with_protocol_header(event_stream_head(&req)),
        },
    )
}

/// Whether `GET /sse/diagnose` would run (its headers, no probes): a
/// monitor checking the path's headers without waiting out the burst.
#[utoipa::path(
    tag = "streams",
    responses(
        (status = 200, description = "A GET would run the diagnosis (its headers, no body)"),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "No subscribe scope"),
    )
)]
#[head("/sse/diagnose")]
pub async fn diagnose_head(req: HttpRequest, _auth: Authenticated<Subscribe>) -> HttpResponse {
    event_stream_head(&req)
}
