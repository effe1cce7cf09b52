//! Why a stream ends, and the message that ends it.

use actix::Message;
use serde::Serialize;

/// Why a stream was closed: the log line, the metric label and the counters
/// of `/sse/stats` all come from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The client closed the connection.
    ClientGone,
    /// The queue was full: the client reads slower than events arrive.
    Slow,
    /// No successful write for the stale threshold (Janitor).
    Stale,
    /// The broker is shutting down.
    Shutdown,
    /// The stream's token expired.
    TokenExpired,
    /// The stream's task finished and its last event was sent.
    TaskFinished,
    /// Replay could not read the store; the client reconnects and retries.
    StoreUnavailable,
    /// An operator closed it (`DELETE /sse/connections/{id}`).
    Disconnected,
}

impl CloseReason {
    pub const ALL: [Self; 8] = [
        Self::ClientGone,
        Self::Slow,
        Self::Stale,
        Self::Shutdown,
        Self::TokenExpired,
        Self::TaskFinished,
        Self::StoreUnavailable,
        Self::Disconnected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientGone => "client_gone",
            Self::Slow => "slow",
            Self::Stale => "stale",
            Self::Shutdown => "shutdown",
            Self::TokenExpired => "token_expired",
            Self::TaskFinished => "task_finished",
            Self::StoreUnavailable => "store_unavailable",
            Self::Disconnected => "disconnected",
        }
    }

    /// Whether the stream is torn down at once, without waiting for its
    /// client to read what is queued: the broker gave up on the client.
    pub fn aborts(self) -> bool {
        matches!(
            self,
            Self::Slow | Self::Stale | Self::StoreUnavailable | Self::Disconnected
        )
    }
}

/// Close this stream for `reason`. Whoever owns a stream (the Registry, the
/// Janitor) holds it as a `Recipient<Close>`, not as the actor.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Close {
    pub reason: CloseReason,
}
