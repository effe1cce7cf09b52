//! Extractors that turn bad input into the error catalogue's JSON errors.
//!
//! [`JsonBody`] reads the body itself, whatever the `Content-Type` (a plain
//! `curl -d` sends a form type), up to the configured limit, and tells a
//! syntax error or a body that is not UTF-8 (400) from a wrong field type or
//! a body that is not an object (422); [`JsonDocument`] takes any JSON.
//! [`Query`] reads a query string. Both name the field that failed in plain
//! words (`crate::error::plain`). The caller's identity is read by
//! [`Authenticated`], re-exported from `super::authenticated`.

use std::ops::Deref;

use actix_web::{FromRequest, HttpRequest, dev::Payload, error::PayloadError, http::header, web};
use futures_util::{
    StreamExt,
    future::{LocalBoxFuture, Ready, ready},
};
use serde::de::DeserializeOwned;

pub use super::authenticated::{
    Admin, Authenticated, OpenStream, Publish, RequiredScope, Subscribe, TicketQuery,
};
use crate::{
    auth::Principal,
    domain::ProjectId,
    error::{
        ApiError, ErrorCode,
        plain::{self, JsonError},
    },
};

/// The body limits, shared with the extractors through app data: its size,
/// and how long the client has to send all of it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub max_bytes: usize,
    pub read_timeout: std::time::Duration,
    /// The longest line or event of a generation upload.
    pub max_upload_line_bytes: usize,
}

impl BodyLimit {
    /// The limits the app was configured with (the defaults without).
    pub fn of(req: &HttpRequest) -> Self {
        req.app_data::<web::Data<Self>>()
            .map(|limit| *limit.get_ref())
            .unwrap_or_default()
    }
}

impl Default for BodyLimit {
    fn default() -> Self {
        Self {
            max_bytes: 65_536,
            read_timeout: std::time::Duration::from_secs(30),
            max_upload_line_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A JSON request body that must be an object, read into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// An optional JSON object body: an empty body, or JSON `null`, is `None`.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

/// A JSON body of any shape, read into `T` (publish's one event, or an
/// array of them).
#[derive(Debug)]
pub struct JsonDocument<T>(pub T);

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the {limit}-byte limit"),
    )
}

/// Refuses a body sent with a `Content-Encoding` (gzip, br, …): the broker
/// reads bodies as sent, so a compressed one would be taken for broken JSON
/// and a plain one mislabelled would be read as if it were plain. 415, as
/// RFC 9110 §15.5.16 has it, before any of the body is read.
pub(super) fn uncompressed(req: &HttpRequest) -> Result<(), ApiError> {
    let coded = req
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
    match coded {
        None => Ok(()),
        Some(coding) => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Encoding {} is not supported; send the body uncompressed",
                crate::domain::quoted_input(coding)
            ),
        )),
    }
}

/// Reads the whole body, within the size limit and the read timeout: a
/// client that trickles its body would otherwise hold its connection (and a
/// worker's attention) for as long as it likes.
async fn read_body(req: HttpRequest, payload: Payload) -> Result<web::BytesMut, ApiError> {
    uncompressed(&req)?;
    let limits = BodyLimit::of(&req);
    tokio::time::timeout(
        limits.read_timeout,
        read_limited(&req, payload, limits.max_bytes),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                limits.read_timeout.as_secs()
            ),
        ))
    })
}

async fn read_limited(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| match error {
            PayloadError::Overflow => too_large(limit),
            other => ApiError::from(&other),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the whole body and parses it with `parse`; `None` for an empty body.
fn parse_body<T: 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    parse: fn(&[u8]) -> Result<T, JsonError>,
) -> LocalBoxFuture<'static, Result<Option<T>, ApiError>> {
    let (req, payload) = (req.clone(), payload.take());
    Box::pin(async move {
        let body = read_body(req, payload).await?;
        let body = body.strip_prefix(crate::domain::UTF8_BOM).unwrap_or(&body);
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse(body).map(Some).map_err(|error| match error {
            JsonError::Field(message) => ApiError::new(ErrorCode::InvalidField, message),
            JsonError::Syntax(message) => ApiError::new(ErrorCode::MalformedJson, message),
        })
    })
}

fn empty_body() -> ApiError {
    ApiError::new(
        ErrorCode::MalformedJson,
        "the request body is empty; send a JSON document",
    )
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = parse_body(req, payload, plain::from_json_object);
        Box::pin(async move { body.await?.map(JsonBody).ok_or_else(empty_body) })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = parse_body(req, payload, plain::from_json_object_or_null);
        Box::pin(async move { body.await.map(|body| OptionalJsonBody(body.flatten())) })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonDocument<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = parse_body(req, payload, plain::from_json_slice);
        Box::pin(async move { body.await?.map(JsonDocument).ok_or_else(empty_body) })
    }
}

/// A query string read into `T`: a bad parameter is a 400 `invalid_query`
/// that names it (`limit must be a whole number`). Unknown parameters are
/// ignored, as `access_token` must be.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            plain::from_query(req.query_string())
                .map(Query)
                .map_err(|message| ApiError::new(ErrorCode::InvalidQuery, message)),
        )
    }
}

/// A path segment that does not fit its handler's type is a 404: no route
/// has that path (the segments are strings, so this is a safety net).
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| {
        ApiError::new(ErrorCode::NotFound, "no route matches this path").into()
    })
}

/// A `project_id` parameter: empty means none; a project the caller's
/// token does not grant is refused with 403.
pub fn project_param(
    principal: &Principal,
    raw: Option<&str>,
) -> Result<Option<ProjectId>, ApiError> {
    project_field(principal, raw.filter(|p| !p.is_empty()))
}

/// [`project_param`] for a JSON body's `project_id`, where `""` is a value
/// (refused, as `/sse/publish` refuses it), not a query left empty.
pub fn project_field(
    principal: &Principal,
    raw: Option<&str>,
) -> Result<Option<ProjectId>, ApiError> {
    let Some(project) = raw.map(ProjectId::parse).transpose()? else {
        return Ok(None);
    };
    if !principal.may_access(&project) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "the token does not grant this project",
        ));
    }
    Ok(Some(project))
}
