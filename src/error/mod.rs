//! The error catalogue: every error a client can see, its `snake_case` code
//! and its HTTP status, in one table, rendered by the one `ResponseError`
//! impl as `{"error": {"code", "message"}}`. Internal causes (SQL, paths) are
//! logged, never sent.
//!
//! - `from_broker`: the broker's own error enums (domain, store, actors).
//! - `from_http`: what actix-web, actix-cors and the head guard refuse, so a
//!   refusal the broker did not write itself still answers in this format.
//! - `plain`: serde's input errors turned into plain words that name the
//!   field (`limit must be a whole number`).

mod from_broker;
mod from_http;
pub mod plain;
mod wide_integers;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::Serialize;
use serde_json::Value;

pub use from_http::foreign_error;

/// Every client-visible error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedJson,
    MalformedRequest,
    InvalidField,
    UnknownEventType,
    InvalidPayload,
    InvalidLastEventId,
    InvalidQuery,
    PayloadTooLarge,
    UnsupportedMediaType,
    HeadersTooLarge,
    ConnectionNotFound,
    NotFound,
    MethodNotAllowed,
    TaskNotFound,
    InvalidTaskId,
    InvalidChatId,
    InvalidMessageId,
    TaskExists,
    TaskCancelled,
    TaskFinished,
    /// A newer upload to the task took over.
    UploadSuperseded,
    /// The uploads' memory budget is spent.
    UploadMemoryFull,
    Conflict,
    Unauthorized,
    Forbidden,
    CorsOriginNotAllowed,
    CorsRequestNotAllowed,
    RequestTimeout,
    TooManyConnections,
    RateLimited,
    TooManyStreams,
    AuthUnavailable,
    /// The instance holding a stream cannot be asked (Redis does not
    /// answer): not known to be absent.
    ClusterUnavailable,
    ShuttingDown,
    StoreUnavailable,
    /// A commit was sent but not confirmed in time: it may have been stored.
    StoreOutcomeUnknown,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            Self::MalformedJson
            | Self::MalformedRequest
            | Self::InvalidLastEventId
            | Self::InvalidQuery
            | Self::InvalidTaskId
            | Self::InvalidChatId
            | Self::InvalidMessageId => StatusCode::BAD_REQUEST,
            Self::TaskExists
            | Self::TaskCancelled
            | Self::TaskFinished
            | Self::UploadSuperseded
            | Self::Conflict => StatusCode::CONFLICT,
            Self::InvalidField | Self::UnknownEventType | Self::InvalidPayload => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::ConnectionNotFound | Self::NotFound | Self::TaskNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::CorsOriginNotAllowed | Self::CorsRequestNotAllowed => {
                StatusCode::FORBIDDEN
            }
            Self::RateLimited | Self::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            Self::TooManyConnections
            | Self::ShuttingDown
            | Self::StoreUnavailable
            | Self::StoreOutcomeUnknown
            | Self::UploadMemoryFull
            | Self::AuthUnavailable
            | Self::ClusterUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::MalformedRequest => "malformed_request",
            Self::InvalidField => "invalid_field",
            Self::UnknownEventType => "unknown_event_type",
            Self::InvalidPayload => "invalid_payload",
            Self::InvalidLastEventId => "invalid_last_event_id",
            Self::InvalidQuery => "invalid_query",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::HeadersTooLarge => "headers_too_large",
            Self::ConnectionNotFound => "connection_not_found",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TaskNotFound => "task_not_found",
            Self::InvalidTaskId => "invalid_task_id",
            Self::InvalidChatId => "invalid_chat_id",
            Self::InvalidMessageId => "invalid_message_id",
            Self::TaskExists => "task_exists",
            Self::TaskCancelled => "task_cancelled",
            Self::TaskFinished => "task_finished",
            Self::UploadSuperseded => "upload_superseded",
            Self::UploadMemoryFull => "upload_memory_full",
            Self::Conflict => "conflict",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::CorsOriginNotAllowed => "cors_origin_not_allowed",
            Self::CorsRequestNotAllowed => "cors_request_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::TooManyConnections => "too_many_connections",
            Self::RateLimited => "rate_limited",
            Self::TooManyStreams => "too_many_streams",
            Self::ClusterUnavailable => "cluster_unavailable",
            Self::AuthUnavailable => "auth_unavailable",
            Self::ShuttingDown => "shutting_down",
            Self::StoreUnavailable => "store_unavailable",
            Self::StoreOutcomeUnknown => "store_outcome_unknown",
            Self::Internal => "internal_error",
        }
    }
}

/// An error as a client sees it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra machine-readable fields merged into the error object
    /// (e.g. `valid_types` for an unknown event type).
    pub details: Option<serde_json::Map<String, Value>>,
    /// The `error` of a 401's `WWW-Authenticate: Bearer` challenge (RFC 6750
    /// section 3.1): `invalid_token` when a token was sent and refused.
    pub bearer_error: Option<&'static str>,
    /// The scope a 403's token lacks: its challenge says
    /// `error="insufficient_scope"` and names it (RFC 6750 section 3.1).
    pub missing_scope: Option<&'static str>,
}

/// The JSON error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorObject {
    /// Stable `snake_case` code.
    pub code: String,
    pub message: String,
    /// Only for `unknown_event_type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_types: Option<Vec<String>>,
    /// Only for `method_not_allowed`: the methods the path takes (also in
    /// the `Allow` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_methods: Option<Vec<String>>,
    /// Only for `rate_limited` and `too_many_streams`: the seconds until a
    /// retry may pass (also in the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            bearer_error: None,
            missing_scope: None,
        }
    }

    /// A 403 for a token without `scope`.
    pub fn insufficient_scope(scope: &'static str) -> Self {
        Self {
            missing_scope: Some(scope),
            ..Self::new(
                ErrorCode::Forbidden,
                format!("this endpoint needs the `{scope}` scope"),
            )
        }
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details
            .get_or_insert_with(serde_json::Map::new)
            .insert(key.to_owned(), value.into());
        self
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut error = serde_json::Map::new();
        error.insert("code".into(), self.code.as_str().into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(details) = &self.details {
            error.extend(details.clone());
        }
        let mut response = HttpResponse::build(self.status_code());
        // A full instance frees the socket at once: kept alive, each refused
        // client would hold a file descriptor through the keep-alive, and a
        // reconnect burst would spend the headroom kept for accepting.
        if self.code == ErrorCode::TooManyConnections {
            response.force_close();
        }
        if self.code == ErrorCode::Unauthorized {
            let challenge = match self.bearer_error {
                Some(error) => format!("Bearer error=\"{error}\""),
                None => "Bearer".to_owned(),
            };
            response.insert_header(("WWW-Authenticate", challenge));
        }
        if let Some(scope) = self.missing_scope {
            let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
            response.insert_header(("WWW-Authenticate", challenge));
        }
        if let Some(Value::Array(methods)) =
            self.details.as_ref().and_then(|d| d.get("allowed_methods"))
        {
            let allow: Vec<&str> = methods.iter().filter_map(Value::as_str).collect();
            response.insert_header(("Allow", allow.join(", ")));
        }
        let retry_after = self
            .details
            .as_ref()
            .and_then(|d| d.get("retry_after_secs"))
            .and_then(Value::as_u64);
        match retry_after {
            Some(secs) => {
                response.insert_header(("Retry-After", secs.to_string()));
            }
            None if matches!(
                self.code.status(),
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
            ) =>
            {
                response.insert_header(("Retry-After", "1"));
            }
            None => {}
        }
        response.json(serde_json::json!({ "error": error }))
    }
}
