//! `GET /sse/history`: stored events as JSON, oldest first, with the same
//! filters and visibility rules as a stream.

use actix_web::{HttpResponse, route, web};
use serde::{Deserialize, Serialize};

use super::extract::{Authenticated, Query, Subscribe};
use crate::{
    domain::{EventId, StoredEvent},
    error::{ApiError, ErrorCode},
    services::streams::StreamRequest,
    state::AppState,
};

const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Comma-separated event types; default all.
    pub event_types: Option<String>,
    pub project_id: Option<String>,
    /// Only events with a greater id.
    pub after: Option<String>,
    /// At most 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// With authentication off only: the identity whose private events are
    /// listed too, as a stream with the same `user_id` receives them
    /// (development use).
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEvent {
    pub id: i64,
    pub event_type: String,
    pub data: serde_json::Value,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub task_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    pub events: Vec<HistoryEvent>,
    /// Pass as `after` for the next page; `null` at the end. A full page
    /// always gives one, even when it happens to hold the last events (the
    /// next page is then empty); so does a page that ends before `limit`
    /// because its events are large (about 1 MiB of event data a page).
    pub next_after: Option<i64>,
}

impl From<StoredEvent> for HistoryEvent {
    fn from(event: StoredEvent) -> Self {
        Self {
            id: event.id.map_or(0, |id| id.0),
            event_type: event.event_type.to_string(),
            data: event.data,
            project_id: event.project_id.map(|p| p.to_string()),
            user_id: event.user_id.map(|u| u.to_string()),
            task_id: event.task_id.map(|t| t.to_string()),
            created_at: crate::domain::rfc3339(event.created_at_ms),
        }
    }
}

/// Stored events, oldest first, paged by `after`/`limit`.
#[utoipa::path(
    tag = "streams",
    params(HistoryQuery),
    responses(
        (status = 200, description = "A page of stored events", body = HistoryPage),
        (status = 400, description = "Bad `after` or `limit` (`invalid_query`, naming the parameter)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "Project outside the token", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown event type", body = crate::error::ErrorBody),
        (status = 503, description = "Event store unavailable", body = crate::error::ErrorBody),
    )
)]
#[route("/sse/history", method = "GET", method = "HEAD")]
pub async fn history(
    state: web::Data<AppState>,
    auth: Authenticated<Subscribe>,
    query: Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let after = match query.after.as_deref().filter(|a| !a.is_empty()) {
        Some(raw) => EventId::parse(raw).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                "after must be a non-negative event id",
            )
        })?,
        None => EventId(0),
    };
    let subscription = state.streams.subscription(
        &auth.principal,
        StreamRequest {
            event_types: query.event_types.as_deref(),
            project_id: query.project_id.as_deref(),
            user_id: query.user_id.as_deref(),
        },
    )?;
    let (events, next_after) = state.streams.history(&subscription, after, limit).await?;
    Ok(HttpResponse::Ok().json(HistoryPage {
        events: events.into_iter().map(HistoryEvent::from).collect(),
        next_after: next_after.map(|id| id.0),
    }))
}
