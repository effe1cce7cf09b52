//! `POST /sse/subscribe` for a stream on another instance.
//!
//! Like a renewal (see `cluster_renewal`): the instance the request landed
//! on, holding no such stream, asks the cluster over the control channel;
//! the one instance holding it applies the change (its stream gets
//! `subscription_updated`) and pushes the new subscription onto a reply
//! list; the others stay silent. No reply within the timeout: no such
//! stream. The asking instance has already checked the filter against the
//! caller's token, so the holder checks only who owns the stream.

use actix::{ActorFutureExt, Context, Handler, Message, ResponseActFuture, WrapFuture};

use super::{
    RedisBridge,
    control_call::NoAnswer,
    wire::{ControlRequest, SubscriptionReply},
};
use crate::{
    actors::registry::{UpdateSubscription, UpdateSubscriptionError},
    domain::{EventType, ProjectId, SubscriptionView, TypeFilter, UserId},
    stream::ConnectionId,
};

/// Change the filter of a stream that is not on this instance.
#[derive(Debug, Message)]
#[rtype(result = "Result<SubscriptionView, UpdateSubscriptionError>")]
pub struct UpdateClusterSubscription(pub UpdateSubscription);

impl Handler<UpdateClusterSubscription> for RedisBridge {
    type Result = ResponseActFuture<Self, Result<SubscriptionView, UpdateSubscriptionError>>;

    fn handle(&mut self, msg: UpdateClusterSubscription, _: &mut Context<Self>) -> Self::Result {
        let UpdateClusterSubscription(update) = msg;
        let call = self.control_call("subscription");
        let ask = async move {
            let reply: SubscriptionReply = call
                .ask_holder(|reply_to| ControlRequest::UpdateSubscription {
                    reply_to,
                    connection_id: update.id.to_string(),
                    requester: update.requester.as_ref().map(|u| u.as_str().to_owned()),
                    event_types: match &update.event_types {
                        TypeFilter::All => None,
                        TypeFilter::Only(types) => {
                            Some(types.iter().map(ToString::to_string).collect())
                        }
                    },
                    project_id: update.project_id.as_ref().map(|p| p.as_str().to_owned()),
                })
                .await
                .map_err(|no_answer| match no_answer {
                    NoAnswer::Unavailable(error) => {
                        tracing::warn!(error.message = %error, "cannot ask the cluster for a stream's subscription change");
                        UpdateSubscriptionError::ClusterUnreachable
                    }
                    NoAnswer::Silence => UpdateSubscriptionError::UnknownConnection,
                })?;
            match reply.outcome.as_str() {
                "updated" => Ok(SubscriptionView {
                    event_types: reply.event_types,
                    project_id: reply
                        .project_id
                        .as_deref()
                        .and_then(|p| ProjectId::parse(p).ok()),
                }),
                refused => Err(refusal_of(refused)),
            }
        };
        Box::pin(ask.into_actor(self).map(|result, _, _| result))
    }
}

impl RedisBridge {
    /// Changes the stream's filter if it is on this instance, and says how
    /// it went; says nothing otherwise.
    pub(super) fn answer_subscription(
        &mut self,
        reply_to: String,
        update: Option<UpdateSubscription>,
        ctx: &mut Context<Self>,
    ) {
        let Some(update) = update else {
            return;
        };
        let registry = self.registry.clone();
        let answer = async move {
            match registry.send(update).await {
                Ok(Ok(view)) => Some(SubscriptionReply {
                    outcome: "updated".to_owned(),
                    event_types: view.event_types,
                    project_id: view.project_id.map(|p| p.as_str().to_owned()),
                }),
                Ok(Err(
                    UpdateSubscriptionError::UnknownConnection
                    | UpdateSubscriptionError::ClusterUnreachable,
                ))
                | Err(_) => None,
                Ok(Err(refused)) => Some(SubscriptionReply {
                    outcome: refusal_name(refused).to_owned(),
                    event_types: Vec::new(),
                    project_id: None,
                }),
            }
        };
        self.answer_as_holder(reply_to, "a subscription change", answer, ctx);
    }
}

/// How the holder names a refusal in its reply.
fn refusal_name(refused: UpdateSubscriptionError) -> &'static str {
    match refused {
        UpdateSubscriptionError::NotOwner => "not_owner",
        UpdateSubscriptionError::ProjectNotGranted => "project_not_granted",
        UpdateSubscriptionError::UnknownConnection
        | UpdateSubscriptionError::ClusterUnreachable => "unknown_connection",
        UpdateSubscriptionError::TaskStream => "task_stream",
    }
}

/// The refusal a reply names (an unknown name: as if nobody held the stream).
fn refusal_of(name: &str) -> UpdateSubscriptionError {
    match name {
        "not_owner" => UpdateSubscriptionError::NotOwner,
        "project_not_granted" => UpdateSubscriptionError::ProjectNotGranted,
        "task_stream" => UpdateSubscriptionError::TaskStream,
        _ => UpdateSubscriptionError::UnknownConnection,
    }
}

/// The change a control request asks for, when it reads.
pub(super) fn update_of(
    connection_id: &str,
    requester: Option<&str>,
    event_types: Option<&[String]>,
    project_id: Option<&str>,
) -> Option<UpdateSubscription> {
    let event_types = match event_types {
        None => TypeFilter::All,
        Some(names) => TypeFilter::only(
            names
                .iter()
                .map(|name| EventType::parse(name))
                .collect::<Result<Vec<_>, _>>()
                .ok()?,
        ),
    };
    Some(UpdateSubscription {
        id: ConnectionId::parse(connection_id)?,
        event_types,
        project_id: project_id.map(ProjectId::parse).transpose().ok()?,
        requester: requester.map(UserId::parse).transpose().ok()?,
    })
}
