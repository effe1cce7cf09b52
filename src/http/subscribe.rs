//! `POST /sse/subscribe`: a live stream's event types changed in place.

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};

use super::extract::{Authenticated, JsonBody, Subscribe};
use crate::{
    error::{ApiError, ErrorCode},
    state::AppState,
    stream::ConnectionId,
};

/// Event types as a list or a comma-separated string.
#[derive(Debug, utoipa::ToSchema)]
// For the schema only (utoipa reads it): either form as it is, no tag.
#[serde(untagged)]
pub enum EventTypeList {
    List(Vec<String>),
    Csv(String),
}

/// By hand rather than `#[serde(untagged)]`, whose error ("data did not
/// match any variant") says neither what is wrong nor what to send.
impl<'de> Deserialize<'de> for EventTypeList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListOrCsv;

        impl<'de> serde::de::Visitor<'de> for ListOrCsv {
            type Value = EventTypeList;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of event types or a comma-separated string")
            }

            fn visit_str<E: serde::de::Error>(self, csv: &str) -> Result<EventTypeList, E> {
                Ok(EventTypeList::Csv(csv.to_owned()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut items: A,
            ) -> Result<EventTypeList, A::Error> {
                let mut list = Vec::new();
                while let Some(item) = items.next_element::<String>()? {
                    // Blank entries of a string are skipped (`a,,b`, a
                    // trailing comma), but a blank item of an array is a
                    // mistake that would otherwise widen the filter to every
                    // type when it is the only one.
                    if item.trim().is_empty() {
                        return Err(serde::de::Error::invalid_value(
                            serde::de::Unexpected::Str(&item),
                            &"an event type, not an empty string",
                        ));
                    }
                    list.push(item);
                }
                Ok(EventTypeList::List(list))
            }
        }

        deserializer.deserialize_any(ListOrCsv)
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    pub connection_id: String,
    /// Empty = every type.
    pub event_types: EventTypeList,
    pub project_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscribeResponse {
    pub connection_id: String,
    pub event_types: Vec<String>,
    pub project_id: Option<String>,
}

/// Change a live stream's filter; the stream receives `subscription_updated`.
#[utoipa::path(
    tag = "streams",
    request_body = SubscribeRequest,
    responses(
        (status = 200, description = "The new filter", body = SubscribeResponse),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "A project outside the token, or outside the token the stream was opened with", body = crate::error::ErrorBody),
        (status = 404, description = "No live connection with this id, or another user's (answered alike)", body = crate::error::ErrorBody),
        (status = 409, description = "A task's stream (`conflict`): it follows its task, its filter cannot change", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown event type, a missing field or a wrong field type", body = crate::error::ErrorBody),
        (status = 503, description = "In a cluster: not on this instance, and Redis does not answer to ask the others (`cluster_unavailable`, Retry-After)", body = crate::error::ErrorBody),
    )
)]
#[post("/sse/subscribe")]
pub async fn subscribe(
    state: web::Data<AppState>,
    auth: Authenticated<Subscribe>,
    body: JsonBody<SubscribeRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0;
    // As on /sse/publish and /tasks: a JSON body says "every project" by
    // leaving the field out (or null), never with "" (a query string's
    // empty parameter is unset, as forms send it).
    if request.project_id.as_deref() == Some("") {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "project_id may not be empty; leave it out, or null, for every project",
        ));
    }
    let id = ConnectionId::parse(&request.connection_id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::ConnectionNotFound,
            "no live connection with this connection_id",
        )
    })?;
    let csv = match request.event_types {
        EventTypeList::List(items) => items.join(","),
        EventTypeList::Csv(csv) => csv,
    };
    let view = state
        .streams
        .update(
            &auth.principal,
            id,
            Some(&csv),
            request.project_id.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(SubscribeResponse {
        connection_id: id.to_string(),
        event_types: view.event_types,
        project_id: view.project_id.map(|p| p.to_string()),
    }))
}
