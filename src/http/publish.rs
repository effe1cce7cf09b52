//! `POST /sse/publish`, `POST /sse/test-event`.

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    event_document::{EventDocument, RepeatedKey},
    extract::{Authenticated, JsonDocument, OptionalJsonBody, Publish},
};
use crate::{
    auth::Principal,
    domain::{EventId, MAX_EVENTS_PER_PUBLISH, NewEvent, Task, TaskId, event::EventError},
    error::{ApiError, ErrorCode, plain},
    services::events::PublishEvent,
    services::tasks::TaskWriteError,
    state::AppState,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublishResponse {
    /// One id per event, in order; `null` for `persist: false`.
    pub ids: Vec<Option<i64>>,
}

// The body of `POST /sse/publish` for the OpenAPI document: the handler
// reads it as an `EventDocument` (which also refuses repeated keys), so
// this type only gives the schema. Its doc comment is the schema's.
/// One event, or an array of up to 1000 (`MAX_EVENTS_PER_PUBLISH`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // the variants are the schema's `oneOf`, never built
enum PublishBody {
    One(PublishEvent),
    /// 1 to 1000 events, stored and delivered in order.
    Many(Vec<PublishEvent>),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestEventResponse {
    pub id: Option<i64>,
}

/// A publisher may only publish to the projects its token grants, and, when
/// confined to them, never without one.
fn check_projects(principal: &Principal, events: &[NewEvent]) -> Result<(), ApiError> {
    if principal.confined && events.iter().any(|e| e.project_id.is_none()) {
        return Err(ApiError::new(ErrorCode::Forbidden, CONFINED));
    }
    match events
        .iter()
        .filter_map(|e| e.project_id.as_ref())
        .find(|p| !principal.may_access(p))
    {
        Some(project) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("the token does not grant project {project}"),
        )),
        None => Ok(()),
    }
}

/// Why a confined publisher's write without a project is refused.
pub(super) const CONFINED: &str = "this broker keeps a token that does not grant every project \
     within its projects (--publish-within-projects): give a project_id the token grants";

/// An event naming a task must pass the task API's authorization, and may
/// not change the task behind its back: the types of a task's stream
/// (`progress`, `text`, `reasoning`, `complete`, `error`) go through `/tasks/{id}/...`
/// only, so a task's row and its stream always agree. Any other type may
/// carry the `task_id` of a task the caller could write to; a task outside
/// the caller's projects answers as an unknown one.
async fn check_task_targets(
    state: &AppState,
    principal: &Principal,
    events: &[NewEvent],
    batch: bool,
) -> Result<(), ApiError> {
    let at = |position: usize| place(batch.then_some(position));
    // Each task is looked up once, however many events of the batch name it.
    let mut checked: Vec<&str> = Vec::new();
    for (position, event) in events.iter().enumerate() {
        let Some(task_ref) = &event.task_id else {
            continue;
        };
        if Task::STREAM_EVENT_TYPES.contains(&event.event_type.as_str()) {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                format!(
                    "{}an event of type `{}` with a task_id changes the task: send it through the task API \
                     (PATCH /tasks/{{id}}, POST /tasks/{{id}}/text, /complete, /fail, /cancel, \
                     or an upload to POST /tasks/{{id}}/stream)",
                    at(position),
                    event.event_type
                ),
            ));
        }
        if checked.contains(&task_ref.as_str()) {
            continue;
        }
        let unknown = || {
            ApiError::new(
                ErrorCode::TaskNotFound,
                format!("{}no task with this task_id", at(position)),
            )
        };
        let Ok(task_id) = TaskId::parse(task_ref.as_str()) else {
            return Err(unknown());
        };
        match state.tasks.writable(principal, &task_id).await {
            Ok(_) => checked.push(task_ref.as_str()),
            Err(TaskWriteError::NotFound) => return Err(unknown()),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

fn ids_json(ids: Vec<Option<EventId>>) -> Vec<Option<i64>> {
    ids.into_iter().map(|id| id.map(|id| id.0)).collect()
}

/// Reads one event or an array of events, naming the position of a bad one;
/// with whether they came as an array (whose errors name positions).
fn parse_events(body: EventDocument) -> Result<(Vec<PublishEvent>, bool), ApiError> {
    if let Some(RepeatedKey { position, key }) = body.repeated_key {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!(
                "{}{} is given more than once",
                place(position),
                plain::field_label(&key)
            ),
        ));
    }
    let decode = |value: Value, position: Option<usize>| {
        plain::from_json_value::<PublishEvent>(value).map_err(|message| {
            ApiError::new(
                ErrorCode::InvalidField,
                format!("{}{message}", place(position)),
            )
        })
    };
    match body.value {
        Value::Array(items) if items.is_empty() => Err(ApiError::new(
            ErrorCode::InvalidField,
            "the array of events is empty",
        )),
        Value::Array(items) if items.len() > MAX_EVENTS_PER_PUBLISH => Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("at most {MAX_EVENTS_PER_PUBLISH} events per request"),
        )),
        Value::Array(items) => Ok((
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| decode(item, Some(i)))
                .collect::<Result<_, _>>()?,
            true,
        )),
        object @ Value::Object(_) => Ok((vec![decode(object, None)?], false)),
        _ => Err(ApiError::new(
            ErrorCode::InvalidField,
            "the body must be an event object or an array of events",
        )),
    }
}

/// Publish one event, or an array of events, in one request.
///
/// Answers once every event is stored (unless `persist: false`) and handed
/// to the streams, with one id per event.
#[utoipa::path(
    tag = "publish",
    request_body(content = inline(PublishBody), description = "One event, or an array of 1 to 1000 events, stored and delivered in order"),
    responses(
        (status = 202, description = "Stored and delivered", body = PublishResponse),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "No publish scope, or project outside the token", body = crate::error::ErrorBody),
        (status = 404, description = "An event's `task_id` names no task the token may write to (`task_not_found`)", body = crate::error::ErrorBody),
        (status = 413, description = "Body over the limit", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid event", body = crate::error::ErrorBody),
        (status = 429, description = "Publish rate limit of this user reached; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "The event store did not answer in time, nothing was published (`store_unavailable`), or a commit was sent and not confirmed, so the events may be stored (`store_outcome_unknown`: retry with the same idempotency_key); see Retry-After", body = crate::error::ErrorBody),
    )
)]
#[post("/sse/publish")]
pub async fn publish(
    state: web::Data<AppState>,
    auth: Authenticated<Publish>,
    body: JsonDocument<EventDocument>,
) -> Result<HttpResponse, ApiError> {
    let (events, batch) = parse_events(body.0)?;
    let events = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            state
                .events
                .prepare(event, auth.principal.user_id.as_ref())
                .map_err(|e| at_position(e, batch.then_some(i)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_projects(&auth.principal, &events)?;
    check_task_targets(&state, &auth.principal, &events, batch).await?;
    let ids = state.events.publish(events).await?;
    Ok(HttpResponse::Accepted().json(PublishResponse { ids: ids_json(ids) }))
}

/// An event's refusal, naming its place in a batch.
fn at_position(error: EventError, position: Option<usize>) -> ApiError {
    let api: ApiError = error.into();
    ApiError {
        message: format!("{}{}", place(position), api.message),
        ..api
    }
}

/// `event [N]: ` for an event of a batch (an array; the first too: `[bad,
/// good]` says `event [0]`), nothing for an event sent alone.
fn place(position: Option<usize>) -> String {
    position.map_or_else(String::new, |i| format!("event [{i}]: "))
}

/// A development event; every field is optional, and each means what it
/// means on `/sse/publish`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestEvent {
    /// Default `system_status`.
    pub event_type: Option<String>,
    pub data: Option<Value>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub task_id: Option<String>,
    pub persist: Option<bool>,
    pub idempotency_key: Option<String>,
}

/// Publish one event for development.
#[utoipa::path(
    tag = "publish",
    request_body(content = Option<TestEvent>, description = "Optional; defaults to a system_status event"),
    responses(
        (status = 202, description = "Stored and delivered (a repeated idempotency_key: the first id)", body = TestEventResponse),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 404, description = "No task with this task_id", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid event", body = crate::error::ErrorBody),
    )
)]
#[post("/sse/test-event")]
pub async fn test_event(
    state: web::Data<AppState>,
    auth: Authenticated<Publish>,
    body: OptionalJsonBody<TestEvent>,
) -> Result<HttpResponse, ApiError> {
    let test = body.0.unwrap_or_default();
    let event = state.events.prepare(
        PublishEvent {
            event_type: test.event_type.unwrap_or_else(|| "system_status".into()),
            data: Some(test.data.unwrap_or_else(
                || json!({ "message": "test event", "ts": crate::domain::now_ms() }),
            )),
            project_id: test.project_id,
            user_id: test.user_id,
            task_id: test.task_id,
            persist: test.persist,
            idempotency_key: test.idempotency_key,
        },
        auth.principal.user_id.as_ref(),
    )?;
    let events = vec![event];
    check_projects(&auth.principal, &events)?;
    check_task_targets(&state, &auth.principal, &events, false).await?;
    let ids = state.events.publish(events).await?;
    Ok(HttpResponse::Accepted().json(TestEventResponse {
        id: ids.into_iter().next().flatten().map(|id| id.0),
    }))
}
