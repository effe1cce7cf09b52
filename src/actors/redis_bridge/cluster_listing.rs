//! `/sse/connections` for the whole cluster, by scatter/gather over Redis.
//!
//! Mirroring every connection into Redis would cost megabytes every few
//! seconds at 10,000 streams; a listing is rare, so it is asked for instead:
//! the requester publishes a `ListConnections` on the control channel, each
//! instance pushes its oldest `offset + limit` rows onto a reply list, and
//! the requester merges them by `connected_at`.

use std::time::{Duration, Instant};

use actix::{ActorFutureExt, Context, Handler, Message, ResponseActFuture, WrapFuture};
use redis::AsyncCommands;
use serde_json::Value;

use super::{
    RedisBridge,
    control_call::waiting_connection,
    wire::{ConnectionsReply, ControlRequest, push_reply},
};
use crate::{actors::registry::ListConnections, domain::ProjectAccess};

/// How long the requester waits for every instance's reply.
const GATHER_TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterListingError {
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
}

/// Live streams of every instance, oldest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<Value, ClusterListingError>")]
pub struct ListClusterConnections {
    pub limit: usize,
    pub offset: usize,
    /// The operator's projects: every instance lists only what they cover.
    pub scope: ProjectAccess,
}

impl Handler<ListClusterConnections> for RedisBridge {
    type Result = ResponseActFuture<Self, Result<Value, ClusterListingError>>;

    fn handle(&mut self, msg: ListClusterConnections, _: &mut Context<Self>) -> Self::Result {
        let call = self.control_call("reply");
        let expected = self.instances.len().max(1);
        let gather = async move {
            let Some(mut publisher) = call.publisher.clone() else {
                return Err(ClusterListingError::Unavailable("not connected".into()));
            };
            let unavailable =
                |e: redis::RedisError| ClusterListingError::Unavailable(e.to_string());
            let payload = call.payload(ControlRequest::ListConnections {
                reply_to: call.reply_to.clone(),
                limit: msg.offset + msg.limit,
                projects: msg.scope.to_list(),
            });
            publisher
                .publish::<_, _, i64>(&call.control, payload)
                .await
                .map_err(unavailable)?;
            let mut waiting = waiting_connection(&call.client, GATHER_TIMEOUT)
                .await
                .map_err(unavailable)?;
            let deadline = Instant::now() + GATHER_TIMEOUT;
            let mut replies: Vec<ConnectionsReply> = Vec::new();
            while replies.len() < expected {
                let remaining = deadline
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64();
                if remaining <= 0.0 {
                    break;
                }
                let popped: Option<(String, String)> = waiting
                    .blpop(&call.reply_to, remaining)
                    .await
                    .map_err(unavailable)?;
                let Some((_, body)) = popped else { break };
                if let Ok(reply) = serde_json::from_str(&body) {
                    replies.push(reply);
                }
            }
            Ok(merge(replies, expected, msg.limit, msg.offset))
        };
        Box::pin(gather.into_actor(self).map(|result, _, _| result))
    }
}

fn merge(replies: Vec<ConnectionsReply>, expected: usize, limit: usize, offset: usize) -> Value {
    let total: usize = replies.iter().map(|r| r.total).sum();
    let mut instances: Vec<String> = replies.iter().map(|r| r.instance_id.clone()).collect();
    instances.sort();
    let mut rows: Vec<Value> = replies.into_iter().flat_map(|r| r.connections).collect();
    // RFC 3339 in one format and zone: string order is time order.
    rows.sort_by(|a, b| {
        let key = |v: &Value| {
            v.get("connected_at")
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        key(a).cmp(&key(b))
    });
    let connections: Vec<Value> = rows.into_iter().skip(offset).take(limit).collect();
    serde_json::json!({
        "connections": connections,
        "total": total,
        "limit": limit,
        "offset": offset,
        "scope": "cluster",
        "instances": instances,
        "complete": instances.len() >= expected,
    })
}

impl RedisBridge {
    /// Answers a control request from any instance (this one included).
    pub(super) fn answer_control(&mut self, request: ControlRequest, ctx: &mut Context<Self>) {
        let (reply_to, limit, projects) = match request {
            ControlRequest::ListConnections {
                reply_to,
                limit,
                projects,
            } => (reply_to, limit, projects),
            ControlRequest::RenewToken {
                reply_to,
                connection_id,
                user_id,
                projects,
                expires_at,
            } => {
                let renewal = super::cluster_renewal::renewal_of(
                    &connection_id,
                    user_id.as_deref(),
                    projects.as_deref(),
                    expires_at,
                );
                self.answer_renewal(reply_to, renewal, ctx);
                return;
            }
            ControlRequest::UpdateSubscription {
                reply_to,
                connection_id,
                requester,
                event_types,
                project_id,
            } => {
                let update = super::cluster_subscription::update_of(
                    &connection_id,
                    requester.as_deref(),
                    event_types.as_deref(),
                    project_id.as_deref(),
                );
                self.answer_subscription(reply_to, update, ctx);
                return;
            }
            ControlRequest::DropConnection {
                reply_to,
                connection_id,
                projects,
            } => {
                let drop = super::cluster_drop::drop_of(&connection_id, projects.as_deref());
                self.answer_drop(reply_to, drop, ctx);
                return;
            }
        };
        let scope = ProjectAccess::from_list(projects.as_deref());
        let Some(mut publisher) = self.publisher.clone() else {
            return;
        };
        let registry = self.registry.clone();
        let instance_id = self.instance_id.clone();
        let answer = async move {
            let page = registry
                .send(ListConnections {
                    limit,
                    offset: 0,
                    scope,
                })
                .await
                .map_err(|e| {
                    redis::RedisError::from((redis::ErrorKind::Io, "registry", e.to_string()))
                })?;
            let reply = ConnectionsReply {
                instance_id,
                total: page.total,
                connections: page
                    .connections
                    .iter()
                    .filter_map(|c| serde_json::to_value(c).ok())
                    .collect(),
            };
            let body = serde_json::to_string(&reply).unwrap_or_default();
            push_reply(&mut publisher, &reply_to, body).await
        };
        actix::AsyncContext::spawn(
            ctx,
            answer.into_actor(self).map(|result, _, _| {
                if let Err(error) = result {
                    tracing::warn!(error.message = %error, "cannot answer a cluster listing");
                }
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(instance: &str, rows: &[&str]) -> ConnectionsReply {
        ConnectionsReply {
            instance_id: instance.into(),
            total: rows.len(),
            connections: rows
                .iter()
                .map(|at| json!({ "connected_at": at, "instance_id": instance }))
                .collect(),
        }
    }

    #[test]
    fn replies_merge_oldest_first_and_page() {
        let merged = merge(
            vec![
                reply(
                    "b",
                    &["2026-01-01T00:00:02.000Z", "2026-01-01T00:00:04.000Z"],
                ),
                reply(
                    "a",
                    &["2026-01-01T00:00:01.000Z", "2026-01-01T00:00:03.000Z"],
                ),
            ],
            2,
            2,
            1,
        );
        assert_eq!(merged["total"], 4);
        assert_eq!(merged["complete"], true);
        let at: Vec<&str> = merged["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["connected_at"].as_str().unwrap())
            .collect();
        assert_eq!(at, ["2026-01-01T00:00:02.000Z", "2026-01-01T00:00:03.000Z"]);
    }

    #[test]
    fn a_missing_instance_marks_the_listing_incomplete() {
        let merged = merge(vec![reply("a", &[])], 3, 10, 0);
        assert_eq!(merged["complete"], false);
    }
}
