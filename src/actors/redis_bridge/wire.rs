//! What instances send each other over Redis: committed batches on the
//! events channel, and scatter/gather requests on the control channel.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{RawEvent, StoredEvent};

/// One event on the wire between instances.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireEvent {
    id: Option<i64>,
    event_type: String,
    data: Value,
    project_id: Option<String>,
    user_id: Option<String>,
    task_id: Option<String>,
    created_at_ms: i64,
    /// The publisher's W3C `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Envelope {
    pub origin: String,
    /// The origin's store identity (see `strangers`); absent from SQLite
    /// stores and older instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<i64>,
    /// The origin's number for this batch (absent from older instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    pub previous_id: Option<i64>,
    pub events: Vec<WireEvent>,
}

impl From<&StoredEvent> for WireEvent {
    fn from(event: &StoredEvent) -> Self {
        Self {
            id: event.id.map(|id| id.0),
            event_type: event.event_type.to_string(),
            data: event.data.clone(),
            project_id: event.project_id.as_ref().map(ToString::to_string),
            user_id: event.user_id.as_ref().map(ToString::to_string),
            task_id: event.task_id.as_ref().map(ToString::to_string),
            created_at_ms: event.created_at_ms,
            traceparent: event.trace_context.as_ref().map(|t| t.as_str().to_owned()),
        }
    }
}

impl WireEvent {
    pub(super) fn into_domain(self) -> Option<StoredEvent> {
        StoredEvent::from_raw(RawEvent {
            id: self.id,
            event_type: &self.event_type,
            data: self.data,
            project_id: self.project_id.as_deref(),
            user_id: self.user_id.as_deref(),
            task_id: self.task_id.as_deref(),
            created_at_ms: self.created_at_ms,
            trace_context: self.traceparent.as_deref(),
        })
    }
}

/// A control request as sent: the request, and who sent it from which
/// store (both absent from older instances).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ControlMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(flatten)]
    pub request: ControlRequest,
}

/// An instance's presence record as written to Redis: what `/sse/stats`
/// shows of it, and its store (see `strangers`).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PresenceRecord {
    #[serde(flatten)]
    pub presence: super::InstancePresence,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<i64>,
    /// The writing process's own random number (see `strangers`): another
    /// one on this instance's record is another process with its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<u64>,
}

/// A request every instance answers by pushing its reply onto `reply_to`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum ControlRequest {
    /// Push this instance's oldest `limit` connections that an operator
    /// with `projects` covers (`None`: every project).
    ListConnections {
        reply_to: String,
        limit: usize,
        #[serde(default)]
        projects: Option<Vec<String>>,
    },
    /// Renew stream `connection_id` if it is here, and push how it went;
    /// stay silent otherwise.
    RenewToken {
        reply_to: String,
        connection_id: String,
        user_id: Option<String>,
        /// `None`: every project.
        projects: Option<Vec<String>>,
        expires_at: Option<u64>,
    },
    /// Change stream `connection_id`'s filter if it is here and
    /// `requester` may (owns it, or authentication is off), and push the
    /// new subscription; stay silent otherwise.
    UpdateSubscription {
        reply_to: String,
        connection_id: String,
        requester: Option<String>,
        /// `None`: every type.
        event_types: Option<Vec<String>>,
        project_id: Option<String>,
    },
    /// Drop stream `connection_id` if it is here and an operator with
    /// `projects` covers it, and push that; stay silent otherwise.
    DropConnection {
        reply_to: String,
        connection_id: String,
        /// `None`: every project.
        projects: Option<Vec<String>>,
    },
}

/// The holder's answer to `RenewToken`: `renewed`, `other_subject` or
/// `fewer_projects`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RenewalReply {
    pub outcome: String,
}

/// The holder's answer to `DropConnection`: `dropped`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DropReply {
    pub outcome: String,
}

/// The holder's answer to `UpdateSubscription`: `updated` (with the new
/// subscription) or `not_owner`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SubscriptionReply {
    pub outcome: String,
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub project_id: Option<String>,
}

/// One instance's answer to `ListConnections`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ConnectionsReply {
    pub instance_id: String,
    pub total: usize,
    pub connections: Vec<Value>,
}

/// Replies to a control request expire even if nobody reads them.
const REPLY_TTL_SECS: i64 = 10;

/// Pushes one instance's answer onto the requester's reply list.
pub(super) async fn push_reply(
    publisher: &mut redis::aio::ConnectionManager,
    reply_to: &str,
    body: String,
) -> redis::RedisResult<()> {
    use redis::AsyncCommands;
    publisher.rpush::<_, _, i64>(reply_to, body).await?;
    publisher.expire::<_, i64>(reply_to, REPLY_TTL_SECS).await?;
    Ok(())
}
