//! Refusals the broker's handlers did not write: request heads the head
//! guard refused, and errors that actix-web or actix-cors rendered in their
//! own format (400 plain text for a CORS refusal). Each becomes a catalogue
//! error here, so `http::fallback` can answer them all as JSON.

use actix_cors::CorsError;
use actix_web::{ResponseError, error::PayloadError, http::StatusCode};

use super::{ApiError, ErrorCode};
use crate::http::head_guard::{
    Refusal,
    head::{self, Malformed},
};

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::QueryTooLong => Self::new(
                ErrorCode::InvalidQuery,
                format!(
                    "the query string is longer than {} bytes",
                    head::MAX_QUERY_BYTES
                ),
            ),
            Refusal::PathTooLong => Self::new(
                ErrorCode::NotFound,
                format!(
                    "no route has a path longer than {} bytes",
                    head::MAX_PATH_BYTES
                ),
            ),
            Refusal::HeadersTooLarge => Self::new(
                ErrorCode::HeadersTooLarge,
                format!(
                    "the request headers are larger than {} bytes in all",
                    head::MAX_HEADER_BYTES
                ),
            ),
            Refusal::TooManyHeaders => Self::new(
                ErrorCode::HeadersTooLarge,
                format!(
                    "the request has more than {} header fields",
                    head::MAX_HEADER_FIELDS
                ),
            ),
            Refusal::HeadTimeout => Self::new(
                ErrorCode::RequestTimeout,
                "the request head did not arrive in time",
            ),
            Refusal::Malformed(what) => Self::new(
                ErrorCode::MalformedRequest,
                format!("the request is not valid HTTP/1.1: {}", malformed(what)),
            ),
        }
    }
}

fn malformed(what: Malformed) -> &'static str {
    match what {
        Malformed::RequestLine => "the request line must be METHOD TARGET HTTP/1.1",
        Malformed::Target => "the request target is not a valid URI",
        Malformed::HeaderLine => "a header line is not NAME: VALUE in visible ASCII",
        Malformed::MissingHost => "the Host header is missing",
        Malformed::DuplicateHost => "the Host header is given more than once",
        Malformed::ContentLength => "Content-Length must be one decimal number, given once",
        Malformed::TransferEncoding => "Transfer-Encoding must be chunked, given once, on HTTP/1.1",
        Malformed::LengthAndEncoding => {
            "Content-Length and Transfer-Encoding may not both be given"
        }
        Malformed::PostWithoutLength => "an HTTP/1.0 POST needs a Content-Length",
    }
}

/// The catalogue error for an error some library rendered, or `None` when
/// it is already one of ours.
pub fn foreign_error(error: &actix_web::Error) -> Option<ApiError> {
    if error.as_error::<ApiError>().is_some() {
        return None;
    }
    if let Some(refusal) = error.as_error::<CorsError>() {
        return Some(cors_error(refusal));
    }
    if let Some(payload) = error.as_error::<PayloadError>() {
        return Some(payload.into());
    }
    Some(by_status(error.as_response_error()))
}

/// actix-cors refuses a preflight with plain text and 400; a browser only
/// needs the status, a developer reading the network tab needs the reason.
fn cors_error(refusal: &CorsError) -> ApiError {
    let (code, message) = match refusal {
        CorsError::OriginNotAllowed => (
            ErrorCode::CorsOriginNotAllowed,
            "this origin may not call the broker from a browser; add it to --cors-origins",
        ),
        CorsError::MethodNotAllowed => (
            ErrorCode::CorsRequestNotAllowed,
            "the method in Access-Control-Request-Method is not allowed across origins",
        ),
        CorsError::HeadersNotAllowed => (
            ErrorCode::CorsRequestNotAllowed,
            "a header in Access-Control-Request-Headers is not allowed across origins",
        ),
        CorsError::MissingRequestMethod | CorsError::BadRequestMethod => (
            ErrorCode::MalformedRequest,
            "a CORS preflight needs a valid Access-Control-Request-Method header",
        ),
        CorsError::BadRequestHeaders => (
            ErrorCode::MalformedRequest,
            "Access-Control-Request-Headers must be a comma-separated list of header names",
        ),
        CorsError::MissingOrigin => (
            ErrorCode::MalformedRequest,
            "a CORS request needs a valid Origin header",
        ),
        _ => (
            ErrorCode::CorsRequestNotAllowed,
            "this cross-origin request is not allowed",
        ),
    };
    ApiError::new(code, message)
}

/// Any other library error, by the status it chose; its own text is logged,
/// not sent.
fn by_status(error: &dyn ResponseError) -> ApiError {
    let status = error.status_code();
    tracing::debug!(%status, error.message = %error, "a library refused the request");
    match status {
        StatusCode::NOT_FOUND => ApiError::new(ErrorCode::NotFound, "nothing is found here"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            ErrorCode::MethodNotAllowed,
            "this path does not take this method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
        }
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            ErrorCode::RequestTimeout,
            "the request did not arrive in time",
        ),
        status if status.is_client_error() => ApiError::new(
            ErrorCode::MalformedRequest,
            format!(
                "the request was refused: {}",
                status
                    .canonical_reason()
                    .unwrap_or("bad request")
                    .to_lowercase()
            ),
        ),
        _ => {
            tracing::error!(%status, error.message = %error, "a library failed a request");
            ApiError::new(
                ErrorCode::Internal,
                "the broker could not answer this request, see its logs",
            )
        }
    }
}

impl From<&PayloadError> for ApiError {
    fn from(error: &PayloadError) -> Self {
        match error {
            PayloadError::Overflow => {
                ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
            }
            _ => ApiError::new(
                ErrorCode::MalformedRequest,
                "the request body could not be read: it ended early or its encoding is broken",
            ),
        }
    }
}
