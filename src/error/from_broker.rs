//! The broker's own errors as client errors: each module's error enum
//! mapped to its catalogue code. Internal causes are logged here, never sent.

use super::{ApiError, ErrorCode};
use crate::{
    actors::{
        janitor::CleanupError,
        persister::PersistError,
        registry::{RegisterError, RenewError, UpdateSubscriptionError},
    },
    domain::{TaskError, event::EventError},
    services::{
        operations::OperationError,
        streams::{OpenMessageError, SubscriptionError, UpdateError},
        tasks::TaskWriteError,
        uploads::{ReadError, UploadError},
    },
    store::StoreError,
};

impl From<crate::auth::AuthError> for ApiError {
    fn from(error: crate::auth::AuthError) -> Self {
        let code = match error {
            crate::auth::AuthError::KeysUnavailable
            | crate::auth::AuthError::TicketsUnavailable => ErrorCode::AuthUnavailable,
            _ => ErrorCode::Unauthorized,
        };
        let bearer_error = match error {
            crate::auth::AuthError::Missing
            | crate::auth::AuthError::KeysUnavailable
            | crate::auth::AuthError::TicketsUnavailable => None,
            // RFC 6750 §3.1: a request that sends its token wrongly is
            // `invalid_request`; a token that is "expired, revoked,
            // malformed, or invalid for other reasons", `invalid_token`.
            crate::auth::AuthError::NotBearer
            | crate::auth::AuthError::TwoTokens
            | crate::auth::AuthError::CookieOnWrite => Some("invalid_request"),
            _ => Some("invalid_token"),
        };
        Self {
            bearer_error,
            ..Self::new(code, error.to_string())
        }
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
            EventError::InvalidTaskId => Self::new(ErrorCode::InvalidTaskId, message),
            EventError::InvalidEventId => Self::new(ErrorCode::InvalidLastEventId, message),
        }
    }
}

impl From<TaskError> for ApiError {
    fn from(error: TaskError) -> Self {
        let message = error.to_string();
        let code = match error {
            TaskError::InvalidId => ErrorCode::InvalidTaskId,
            TaskError::InvalidChatId => ErrorCode::InvalidChatId,
            TaskError::InvalidMessageId => ErrorCode::InvalidMessageId,
            TaskError::InvalidType
            | TaskError::InvalidProgress
            | TaskError::ProgressBackwards { .. }
            | TaskError::UnknownStatus(_)
            | TaskError::NulInText { .. }
            | TaskError::BackToPending { .. } => ErrorCode::InvalidField,
            TaskError::Cancelled => ErrorCode::TaskCancelled,
            TaskError::Finished(_) => ErrorCode::TaskFinished,
        };
        Self::new(code, message)
    }
}

impl From<TaskWriteError> for ApiError {
    fn from(error: TaskWriteError) -> Self {
        match error {
            TaskWriteError::NotFound => Self::new(ErrorCode::TaskNotFound, "no task with this id"),
            TaskWriteError::AlreadyExists => {
                Self::new(ErrorCode::TaskExists, "a task with this id already exists")
            }
            TaskWriteError::Task(error) => error.into(),
            TaskWriteError::Contended => Self::new(
                ErrorCode::Conflict,
                "the task changed concurrently too often; retry",
            ),
            TaskWriteError::Persist(error) => error.into(),
            TaskWriteError::Store(error) => error.into(),
        }
    }
}

/// A store failure: its code, and its cause in words. Each kind of request
/// says what the failure means for it (nothing published, nothing changed,
/// the lines before it applied).
struct StoreFailure {
    code: ErrorCode,
    cause: String,
}

impl StoreFailure {
    fn of_persist(error: &PersistError) -> Option<Self> {
        let (code, cause) = match error {
            PersistError::StoreUnavailable => (
                ErrorCode::StoreUnavailable,
                "the event store is unavailable".to_owned(),
            ),
            PersistError::StoreTimeout(budget) => (
                ErrorCode::StoreUnavailable,
                format!(
                    "the event store did not answer within {} ms",
                    budget.as_millis()
                ),
            ),
            PersistError::Unconfirmed(budget) => (
                ErrorCode::StoreOutcomeUnknown,
                format!(
                    "the event store did not confirm the write within {} ms",
                    budget.as_millis()
                ),
            ),
            PersistError::ShuttingDown => return None,
        };
        Some(Self { code, cause })
    }

    fn of_store(error: &StoreError) -> Self {
        tracing::error!(error.message = %error, error.cause_chain = ?error, "event store error");
        let (code, cause) = match error {
            StoreError::Timeout(budget) => (
                ErrorCode::StoreUnavailable,
                format!(
                    "the event store did not answer within {} ms",
                    budget.as_millis()
                ),
            ),
            StoreError::CommitUnconfirmed(budget) => (
                ErrorCode::StoreOutcomeUnknown,
                format!(
                    "the event store did not confirm the write within {} ms",
                    budget.as_millis()
                ),
            ),
            _ => (
                ErrorCode::StoreUnavailable,
                "the event store is unavailable".to_owned(),
            ),
        };
        Self { code, cause }
    }

    /// The answer: `unavailable` follows the cause when nothing was
    /// stored, `unknown` when it may have been.
    fn answer(self, unavailable: &str, unknown: &str) -> ApiError {
        let meaning = match self.code {
            ErrorCode::StoreOutcomeUnknown => unknown,
            _ => unavailable,
        };
        ApiError::new(self.code, format!("{}; {meaning}", self.cause))
    }
}

impl From<PersistError> for ApiError {
    fn from(error: PersistError) -> Self {
        match StoreFailure::of_persist(&error) {
            Some(failure) => failure.answer(
                "nothing was published, retry later",
                "it may have been published: retry with the same idempotency_key to find out",
            ),
            None => Self::new(
                ErrorCode::ShuttingDown,
                "the broker is shutting down; retry on another instance",
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        StoreFailure::of_store(&error).answer(
            "retry later (a request answered this way changed nothing)",
            "it may have been applied, read it back before retrying",
        )
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
            RegisterError::RateLimited(limited) => limited.into(),
        }
    }
}

impl From<OpenMessageError> for ApiError {
    fn from(error: OpenMessageError) -> Self {
        match error {
            OpenMessageError::Register(error) => error.into(),
            OpenMessageError::Store(error) => error.into(),
        }
    }
}

impl From<UpdateSubscriptionError> for ApiError {
    fn from(error: UpdateSubscriptionError) -> Self {
        match error {
            // Another user's stream is answered as one that does not exist:
            // a 403 would confirm that a leaked connection id is live.
            UpdateSubscriptionError::UnknownConnection | UpdateSubscriptionError::NotOwner => {
                Self::new(
                    ErrorCode::ConnectionNotFound,
                    "no live connection with this connection_id",
                )
            }
            UpdateSubscriptionError::ClusterUnreachable => {
                Self::new(ErrorCode::ClusterUnavailable, error.to_string())
            }
            UpdateSubscriptionError::ProjectNotGranted => Self::new(
                ErrorCode::Forbidden,
                "the token this stream was opened with does not grant this project; reconnect with one that does",
            ),
            UpdateSubscriptionError::TaskStream => Self::new(
                ErrorCode::Conflict,
                "this connection is a task's stream: it carries that task's events until its end, \
                 and its filter cannot change; open /sse/events for other events",
            ),
        }
    }
}

impl From<RenewError> for ApiError {
    fn from(error: RenewError) -> Self {
        // Another subject's stream is 403, as CONTRACT §8 fixes it (where
        // `/sse/subscribe` and `DELETE` answer 404): the caller holds the
        // stream's connection id already, which only its page is given.
        let code = match error {
            RenewError::NotFound => ErrorCode::ConnectionNotFound,
            RenewError::OtherSubject | RenewError::FewerProjects => ErrorCode::Forbidden,
            RenewError::ClusterUnreachable => ErrorCode::ClusterUnavailable,
        };
        Self::new(code, error.to_string())
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        let message = error.to_string();
        match error {
            UploadError::Read(ReadError::Malformed { .. }) => {
                Self::new(ErrorCode::InvalidPayload, message)
            }
            UploadError::Read(
                ReadError::LineTooLong { .. }
                | ReadError::EventTooLong { .. }
                | ReadError::ToolInputTooLong { .. }
                | ReadError::JsonTooLong { .. },
            ) => Self::new(ErrorCode::PayloadTooLarge, message),
            UploadError::Idle(_) => Self::new(ErrorCode::RequestTimeout, message),
            UploadError::Body => Self::new(ErrorCode::MalformedRequest, message),
            // The task's own refusal, its code kept, its message naming the line.
            UploadError::Line { error, .. } => Self::new(Self::from(error).code, message),
            UploadError::Superseded => Self::new(ErrorCode::UploadSuperseded, message),
            UploadError::MemoryFull(_) => Self::new(ErrorCode::UploadMemoryFull, message),
            UploadError::ShuttingDown => Self::new(ErrorCode::ShuttingDown, message),
            UploadError::Task(error) => mid_upload(error),
        }
    }
}

/// A store failure in the middle of an upload: unlike a publish, what the
/// lines before it wrote is stored (and delivered); only this write is not,
/// or may not be.
fn mid_upload(error: TaskWriteError) -> ApiError {
    let failure = match &error {
        TaskWriteError::Persist(persist) => StoreFailure::of_persist(persist),
        TaskWriteError::Store(store) => Some(StoreFailure::of_store(store)),
        _ => None,
    };
    match failure {
        Some(failure) => failure.answer(
            "the lines before this write are applied, this write was not stored: \
             send the rest again, numbered with seq",
            "the lines before this write are applied, this write may have been stored: \
             send the rest again, numbered with seq",
        ),
        None => error.into(),
    }
}

impl From<SubscriptionError> for ApiError {
    fn from(error: SubscriptionError) -> Self {
        match error {
            SubscriptionError::Event(error) => error.into(),
            SubscriptionError::ProjectNotGranted => Self::new(
                ErrorCode::Forbidden,
                "the token does not grant this project",
            ),
        }
    }
}

impl From<UpdateError> for ApiError {
    fn from(error: UpdateError) -> Self {
        match error {
            UpdateError::Subscription(error) => error.into(),
            UpdateError::Registry(error) => error.into(),
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

impl From<OperationError> for ApiError {
    fn from(error: OperationError) -> Self {
        match error {
            OperationError::Mailbox(error) => error.into(),
            OperationError::Cleanup(error) => error.into(),
            OperationError::ClusterUnreachable(error) => {
                Self::new(ErrorCode::ClusterUnavailable, error.to_string())
            }
            OperationError::Metrics(error) => {
                tracing::error!(error.message = %error, "rendering metrics failed");
                Self::new(ErrorCode::Internal, "metrics are unavailable")
            }
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(error: actix::MailboxError) -> Self {
        tracing::error!(error.message = %error, "actor mailbox error");
        Self::new(ErrorCode::ShuttingDown, "the broker is shutting down")
    }
}
