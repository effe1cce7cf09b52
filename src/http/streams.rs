//! `GET /sse/events`: open a stream; `POST /sse/tickets`: a single-use
//! ticket to open one without a token in the URL.

use actix_web::{
    HttpRequest, HttpResponse, HttpResponseBuilder,
    body::{BodyStream, MessageBody},
    get,
    http::{ConnectionType, Version, header},
    post, web,
};
use serde::Deserialize;

use super::extract::{Authenticated, OpenStream, Query, Subscribe, TicketQuery};
use crate::{
    actors::{connection::StreamOptions, registry::RenewError},
    auth::{IssuedTicket, Principal},
    domain::{EventId, Subscription},
    error::{ApiError, ErrorCode},
    services::streams::StreamRequest,
    state::AppState,
    stream::{ConnectionId, StreamAborted, StreamSocket},
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated event types; default all.
    pub event_types: Option<String>,
    /// Only events of this project.
    pub project_id: Option<String>,
    /// Resume after this id (the `Last-Event-ID` header wins).
    pub last_event_id: Option<String>,
    /// With authentication off only: the identity whose private events this
    /// stream receives (development use).
    pub user_id: Option<String>,
}

/// The value of `Last-Event-ID` (header first, then query); empty = none.
/// An empty header gives way to the query (a browser never sends one
/// empty; a proxy or client library that blanks it must not drop the
/// resume point the query carries).
pub(super) fn resume_point(
    req: &HttpRequest,
    query: &StreamQuery,
) -> Result<Option<EventId>, ApiError> {
    let given = |raw: &&str| !raw.trim().is_empty();
    let mut headers = req.headers().get_all("Last-Event-ID");
    let first = headers.next();
    if headers.next().is_some() {
        // Which one the client meant cannot be told (as for a repeated
        // `last_event_id` in the query).
        return Err(ApiError::new(
            ErrorCode::InvalidLastEventId,
            "two Last-Event-ID headers were sent; send one",
        ));
    }
    let header = first
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        .filter(given);
    match header.or(query.last_event_id.as_deref().filter(given)) {
        None => Ok(None),
        Some(raw) => Ok(Some(EventId::parse(raw)?)),
    }
}

/// Open an event stream.
///
/// The first frame is `connected`; a `Last-Event-ID` (header or query)
/// replays every stored event after it that the filter matches, then live
/// events follow with no gap and no duplicate.
#[utoipa::path(
    tag = "streams",
    params(
        StreamQuery,
        TicketQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (digits)", pattern = "^[0-9]{1,19}$"),
    ),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Non-numeric Last-Event-ID", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "No subscribe scope, or project outside the token", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown event type", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limit or per-user stream cap reached; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "Connection limit reached or shutting down", body = crate::error::ErrorBody),
    )
)]
#[get("/sse/events")]
pub async fn open_stream(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated<OpenStream>,
    query: Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let principal = auth.principal;
    let (subscription, resume_after) = checked_request(&req, &state, &query, &principal)?;
    // Charged by the Registry once it admits the stream: a refused request
    // (bad filter, foreign project, a full broker, the per-user cap) opens
    // nothing and costs nothing.
    let options = StreamOptions {
        resume_after,
        token_expires_at: principal.expires_at,
        owner: principal.owner(),
        socket: req.conn_data::<StreamSocket>().copied(),
        charge: state.limits.stream_charge(&req, &principal),
        ..Default::default()
    };
    let (_, body) = state.streams.open(subscription, options).await?;
    Ok(event_stream_response(&req, body))
}

/// What a stream request asks for, checked: its subscription (the filter,
/// against the token) and its resume point. `GET` opens it; `HEAD` answers
/// whether it would.
pub(super) fn checked_request(
    req: &HttpRequest,
    state: &AppState,
    query: &StreamQuery,
    principal: &Principal,
) -> Result<(Subscription, Option<EventId>), ApiError> {
    let resume_after = resume_point(req, query)?;
    let subscription = state.streams.subscription(
        principal,
        StreamRequest {
            event_types: query.event_types.as_deref(),
            project_id: query.project_id.as_deref(),
            user_id: query.user_id.as_deref(),
        },
    )?;
    Ok((subscription, resume_after))
}

/// A stream request's answer to `HEAD`: the headers `GET` would send, no
/// stream behind them.
pub(super) fn event_stream_head(req: &HttpRequest) -> HttpResponse {
    let nothing = futures_util::stream::empty::<Result<web::Bytes, StreamAborted>>();
    event_stream_response(req, BodyStream::new(nothing))
}

/// A stream ticket: what `EventSource` puts in its URL instead of the token.
/// Single use, valid `--ticket-ttl-secs` (30 s by default) and never past
/// the token's own expiry; with Redis, on any instance of the cluster.
#[utoipa::path(
    tag = "streams",
    responses(
        (status = 201, description = "The ticket; open the stream with `?ticket=`", body = IssuedTicket),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "No subscribe scope", body = crate::error::ErrorBody),
        (status = 429, description = "This user's tickets came faster than `--stream-rate-per-user`; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "The cluster's ticket store (Redis) does not answer", body = crate::error::ErrorBody),
    )
)]
#[post("/sse/tickets")]
pub async fn issue_ticket(
    state: web::Data<AppState>,
    auth: Authenticated<Subscribe>,
) -> Result<HttpResponse, ApiError> {
    state.limits.admit_ticket(&auth.principal)?;
    let ticket = state.auth.issue_ticket(&auth.principal).await?;
    Ok(HttpResponse::Created().json(ticket))
}

/// A fresh token for an open stream (after `event: token_expiring`): the
/// stream lives on until the new token's expiry, without a reconnect. The
/// token goes in `Authorization`, for the stream's own subject.
#[utoipa::path(
    tag = "streams",
    params(("id" = String, Path, description = "The stream's connection_id (its `connected` event)")),
    responses(
        (status = 204, description = "The stream now ends with the new token"),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "A token for another subject, or granting fewer projects than the stream was opened with", body = crate::error::ErrorBody),
        (status = 404, description = "No such stream open", body = crate::error::ErrorBody),
        (status = 503, description = "In a cluster: not on this instance, and Redis does not answer to ask the others (`cluster_unavailable`, Retry-After)", body = crate::error::ErrorBody),
    )
)]
#[post("/sse/connections/{id}/token")]
pub async fn renew_token(
    state: web::Data<AppState>,
    id: web::Path<String>,
    auth: Authenticated<Subscribe>,
) -> Result<HttpResponse, ApiError> {
    let id = ConnectionId::parse(&id).ok_or(RenewError::NotFound)?;
    state.streams.renew_token(&auth.principal, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The answer that there is no stream to open (a task over, a chat with
/// nothing running): 204 tells an EventSource to stop reconnecting.
/// `no-store`: a 204 is cacheable by default, and it depends on state that
/// changes (and on `Last-Event-ID`), so no cache may answer a later open.
pub fn no_stream() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The headers of every event stream: the SSE content type, identity
/// encoding so no compression middleware buffers it, and no proxy buffering.
pub fn event_stream_headers(response: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    response
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .insert_header(("X-Accel-Buffering", "no"))
}

/// The response of every stream: SSE headers, identity encoding so no
/// compression middleware buffers it, and no proxy buffering.
///
/// HTTP/1.0 has no chunked encoding: an HTTP/1.0 client gets the body
/// delimited by the connection's close, as RFC 1945 defines it.
pub fn event_stream_response(req: &HttpRequest, body: impl MessageBody + 'static) -> HttpResponse {
    let mut response = event_stream_headers(&mut HttpResponse::Ok()).body(body);
    if req.version() < Version::HTTP_11 {
        response.head_mut().no_chunking(true);
        response
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    response
}
