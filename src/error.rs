//! The error catalogue: every error a client can see, its `snake_case` code
//! and its HTTP status, in one table, rendered by the one `ResponseError`
//! impl as `{"error": {"code", "message"}}`. Internal causes (SQL, paths) are
//! logged, never sent.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::Serialize;
use serde_json::Value;

use crate::{
    actors::{
        janitor::CleanupError,
        persister::PersistError,
        registry::{RegisterError, UpdateSubscriptionError},
    },
    domain::{TaskError, event::EventError},
    store::StoreError,
    task_service::TaskServiceError,
};

/// Every client-visible error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedJson,
    InvalidField,
    UnknownEventType,
    InvalidPayload,
    InvalidLastEventId,
    InvalidQuery,
    PayloadTooLarge,
    ConnectionNotFound,
    NotFound,
    TaskNotFound,
    InvalidTaskId,
    TaskExists,
    TaskCancelled,
    TaskFinished,
    Conflict,
    Unauthorized,
    Forbidden,
    TooManyConnections,
    RateLimited,
    TooManyStreams,
    AuthUnavailable,
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
            | Self::InvalidLastEventId
            | Self::InvalidQuery
            | Self::InvalidTaskId => StatusCode::BAD_REQUEST,
            Self::TaskExists | Self::TaskCancelled | Self::TaskFinished | Self::Conflict => {
                StatusCode::CONFLICT
            }
            Self::InvalidField | Self::UnknownEventType | Self::InvalidPayload => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ConnectionNotFound | Self::NotFound | Self::TaskNotFound => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::RateLimited | Self::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            Self::TooManyConnections
            | Self::ShuttingDown
            | Self::StoreUnavailable
            | Self::StoreOutcomeUnknown
            | Self::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::InvalidField => "invalid_field",
            Self::UnknownEventType => "unknown_event_type",
            Self::InvalidPayload => "invalid_payload",
            Self::InvalidLastEventId => "invalid_last_event_id",
            Self::InvalidQuery => "invalid_query",
            Self::PayloadTooLarge => "payload_too_large",
            Self::ConnectionNotFound => "connection_not_found",
            Self::NotFound => "not_found",
            Self::TaskNotFound => "task_not_found",
            Self::InvalidTaskId => "invalid_task_id",
            Self::TaskExists => "task_exists",
            Self::TaskCancelled => "task_cancelled",
            Self::TaskFinished => "task_finished",
            Self::Conflict => "conflict",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::TooManyConnections => "too_many_connections",
            Self::RateLimited => "rate_limited",
            Self::TooManyStreams => "too_many_streams",
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
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
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
        if self.code == ErrorCode::Unauthorized {
            response.insert_header(("WWW-Authenticate", "Bearer"));
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

impl From<crate::auth::AuthError> for ApiError {
    fn from(error: crate::auth::AuthError) -> Self {
        let code = match error {
            crate::auth::AuthError::KeysUnavailable => ErrorCode::AuthUnavailable,
            _ => ErrorCode::Unauthorized,
        };
        Self::new(code, error.to_string())
    }
}

impl From<crate::limits::RateLimited> for ApiError {
    fn from(refusal: crate::limits::RateLimited) -> Self {
        let code = match refusal.limit {
            crate::limits::Limit::StreamsPerUserCap => ErrorCode::TooManyStreams,
            _ => ErrorCode::RateLimited,
        };
        Self::new(code, refusal.to_string())
            .with_detail("retry_after_secs", refusal.retry_after_secs)
    }
}

impl From<EventError> for ApiError {
    fn from(error: EventError) -> Self {
        let message = error.to_string();
        match error {
            EventError::MalformedType(_) => Self::new(ErrorCode::UnknownEventType, message),
            EventError::UnknownType { valid, .. } => {
                Self::new(ErrorCode::UnknownEventType, message).with_detail("valid_types", valid)
            }
            EventError::InvalidPayload(_) => Self::new(ErrorCode::InvalidPayload, message),
            EventError::InvalidIdentifier { .. } => Self::new(ErrorCode::InvalidField, message),
            EventError::InvalidEventId => Self::new(ErrorCode::InvalidLastEventId, message),
        }
    }
}

impl From<TaskError> for ApiError {
    fn from(error: TaskError) -> Self {
        let message = error.to_string();
        let code = match error {
            TaskError::InvalidId => ErrorCode::InvalidTaskId,
            TaskError::InvalidType
            | TaskError::InvalidProgress
            | TaskError::ProgressBackwards { .. }
            | TaskError::UnknownStatus(_) => ErrorCode::InvalidField,
            TaskError::Cancelled => ErrorCode::TaskCancelled,
            TaskError::Finished(_) => ErrorCode::TaskFinished,
        };
        Self::new(code, message)
    }
}

impl From<TaskServiceError> for ApiError {
    fn from(error: TaskServiceError) -> Self {
        match error {
            TaskServiceError::NotFound => {
                Self::new(ErrorCode::TaskNotFound, "no task with this id")
            }
            TaskServiceError::AlreadyExists => {
                Self::new(ErrorCode::TaskExists, "a task with this id already exists")
            }
            TaskServiceError::Task(error) => error.into(),
            TaskServiceError::Contended => Self::new(
                ErrorCode::Conflict,
                "the task changed concurrently too often; retry",
            ),
            TaskServiceError::Persist(error) => error.into(),
            TaskServiceError::Store(error) => error.into(),
        }
    }
}

impl From<PersistError> for ApiError {
    fn from(error: PersistError) -> Self {
        match error {
            PersistError::StoreUnavailable => Self::new(
                ErrorCode::StoreUnavailable,
                "the event store is unavailable; nothing was published, retry later",
            ),
            PersistError::StoreTimeout(budget) => Self::new(
                ErrorCode::StoreUnavailable,
                format!(
                    "the event store did not answer within {} ms; nothing was published, retry later",
                    budget.as_millis()
                ),
            ),
            PersistError::Unconfirmed(budget) => Self::new(
                ErrorCode::StoreOutcomeUnknown,
                format!(
                    "the event store did not confirm the write within {} ms; it may have been \
                     published: retry with the same idempotency_key to find out",
                    budget.as_millis()
                ),
            ),
            PersistError::ShuttingDown => Self::new(
                ErrorCode::ShuttingDown,
                "the broker is shutting down; retry on another instance",
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(error.message = %error, error.cause_chain = ?error, "event store error");
        match error {
            StoreError::Timeout(budget) => Self::new(
                ErrorCode::StoreUnavailable,
                format!(
                    "the event store did not answer within {} ms; nothing was changed, retry later",
                    budget.as_millis()
                ),
            ),
            StoreError::CommitUnconfirmed(budget) => Self::new(
                ErrorCode::StoreOutcomeUnknown,
                format!(
                    "the event store did not confirm the write within {} ms; it may have been \
                     applied, read it back before retrying",
                    budget.as_millis()
                ),
            ),
            _ => Self::new(
                ErrorCode::StoreUnavailable,
                "the event store is unavailable, retry later",
            ),
        }
    }
}

impl From<RegisterError> for ApiError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::Full => Self::new(
                ErrorCode::TooManyConnections,
                "the broker is at its connection limit, retry later",
            ),
            RegisterError::ShuttingDown => Self::new(
                ErrorCode::ShuttingDown,
                "the broker is shutting down; reconnect later",
            ),
            RegisterError::UserStreamLimit => crate::limits::RateLimited {
                limit: crate::limits::Limit::StreamsPerUserCap,
                retry_after_secs: 1,
            }
            .into(),
        }
    }
}

impl From<UpdateSubscriptionError> for ApiError {
    fn from(error: UpdateSubscriptionError) -> Self {
        match error {
            UpdateSubscriptionError::UnknownConnection => Self::new(
                ErrorCode::ConnectionNotFound,
                "no live connection with this connection_id",
            ),
            UpdateSubscriptionError::NotOwner => Self::new(
                ErrorCode::Forbidden,
                "this connection belongs to another user",
            ),
        }
    }
}

impl From<CleanupError> for ApiError {
    fn from(error: CleanupError) -> Self {
        tracing::error!(error.message = %error, "cleanup failed");
        Self::new(
            ErrorCode::Internal,
            "the cleanup could not run, see the broker's logs",
        )
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(error: actix::MailboxError) -> Self {
        tracing::error!(error.message = %error, "actor mailbox error");
        Self::new(ErrorCode::ShuttingDown, "the broker is shutting down")
    }
}
