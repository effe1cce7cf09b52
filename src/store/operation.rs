//! The kinds of store operation and how one can fail: the labels of the
//! store's metrics and log lines, and what its health report names.

use super::StoreError;

/// One kind of store operation: the label of its metrics and log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    InsertBatch,
    Prune,
    InsertTask,
    EventsAfter,
    LatestId,
    PrunedThrough,
    Task,
    SilentTasks,
    /// A chat's newest task (`GET /chats/{chat_id}/stream`).
    ChatTask,
    /// The tasks that wrote a continued message's earlier parts.
    MessageTasks,
    /// The HealthSampler's re-check of failing reads.
    ReadProbe,
    /// The HealthSampler's re-check of failing writes: one small write.
    WriteProbe,
    Ping,
}

impl Operation {
    pub const ALL: [Self; 13] = [
        Self::InsertBatch,
        Self::Prune,
        Self::InsertTask,
        Self::EventsAfter,
        Self::LatestId,
        Self::PrunedThrough,
        Self::Task,
        Self::SilentTasks,
        Self::ChatTask,
        Self::MessageTasks,
        Self::ReadProbe,
        Self::WriteProbe,
        Self::Ping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InsertBatch => "insert_batch",
            Self::Prune => "prune",
            Self::InsertTask => "insert_task",
            Self::EventsAfter => "events_after",
            Self::LatestId => "latest_id",
            Self::PrunedThrough => "pruned_through",
            Self::Task => "task",
            Self::SilentTasks => "silent_tasks",
            Self::ChatTask => "chat_task",
            Self::MessageTasks => "message_tasks",
            Self::ReadProbe => "read_probe",
            Self::WriteProbe => "write_probe",
            Self::Ping => "ping",
        }
    }

    /// The health sampler's own checks: the round trip and the probes.
    pub fn checks_health(self) -> bool {
        matches!(self, Self::Ping | Self::ReadProbe | Self::WriteProbe)
    }
}

/// How an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Past the store timeout; it did not commit.
    Timeout,
    /// Its commit began but was not confirmed within the timeout.
    Unconfirmed,
    /// The database answered with an error, or could not be reached.
    Error,
}

impl FailureKind {
    pub const ALL: [Self; 3] = [Self::Timeout, Self::Unconfirmed, Self::Error];

    pub fn of(error: &StoreError) -> Self {
        match error {
            StoreError::Timeout(_) => Self::Timeout,
            StoreError::CommitUnconfirmed(_) => Self::Unconfirmed,
            _ => Self::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unconfirmed => "unconfirmed",
            Self::Error => "error",
        }
    }
}
