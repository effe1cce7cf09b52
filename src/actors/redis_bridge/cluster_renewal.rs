//! `POST /sse/connections/{id}/token` for a stream on another instance.
//!
//! A renewal lands wherever the load balancer sends it, seldom on the
//! instance holding the stream. The instance that got it, finding no such
//! stream of its own, asks the cluster over the control channel; the one
//! instance holding it renews it and pushes its outcome onto a reply list;
//! the others stay silent. No reply within the timeout: no such stream.

use actix::{ActorFutureExt, Context, Handler, Message, ResponseActFuture, WrapFuture};

use super::{
    RedisBridge,
    control_call::NoAnswer,
    wire::{ControlRequest, RenewalReply},
};
use crate::{
    actors::registry::{RenewError, RenewToken},
    domain::{ProjectAccess, UserId},
    stream::ConnectionId,
};

/// Renew a stream that is not on this instance.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RenewError>")]
pub struct RenewClusterStream(pub RenewToken);

impl Handler<RenewClusterStream> for RedisBridge {
    type Result = ResponseActFuture<Self, Result<(), RenewError>>;

    fn handle(&mut self, msg: RenewClusterStream, _: &mut Context<Self>) -> Self::Result {
        let RenewClusterStream(renewal) = msg;
        let call = self.control_call("renewal");
        let ask = async move {
            let reply: RenewalReply = call
                .ask_holder(|reply_to| ControlRequest::RenewToken {
                    reply_to,
                    connection_id: renewal.id.to_string(),
                    user_id: renewal.user_id.as_ref().map(|u| u.as_str().to_owned()),
                    projects: renewal.projects.to_list(),
                    expires_at: renewal.expires_at,
                })
                .await
                .map_err(|no_answer| match no_answer {
                    NoAnswer::Unavailable(error) => {
                        tracing::warn!(error.message = %error, "cannot ask the cluster for a stream's renewal");
                        RenewError::ClusterUnreachable
                    }
                    NoAnswer::Silence => RenewError::NotFound,
                })?;
            match reply.outcome.as_str() {
                "renewed" => Ok(()),
                "other_subject" => Err(RenewError::OtherSubject),
                "fewer_projects" => Err(RenewError::FewerProjects),
                _ => Err(RenewError::NotFound),
            }
        };
        Box::pin(ask.into_actor(self).map(|result, _, _| result))
    }
}

impl RedisBridge {
    /// Renews the stream if it is on this instance, and says how it went;
    /// says nothing otherwise.
    pub(super) fn answer_renewal(
        &mut self,
        reply_to: String,
        renewal: Option<RenewToken>,
        ctx: &mut Context<Self>,
    ) {
        let Some(renewal) = renewal else {
            return;
        };
        let registry = self.registry.clone();
        let answer = async move {
            let outcome = match registry.send(renewal).await {
                Ok(Ok(())) => "renewed",
                Ok(Err(RenewError::OtherSubject)) => "other_subject",
                Ok(Err(RenewError::FewerProjects)) => "fewer_projects",
                Ok(Err(RenewError::NotFound | RenewError::ClusterUnreachable)) | Err(_) => {
                    return None;
                }
            };
            Some(RenewalReply {
                outcome: outcome.to_owned(),
            })
        };
        self.answer_as_holder(reply_to, "a stream renewal", answer, ctx);
    }
}

/// The renewal a control request asks for, when it reads.
pub(super) fn renewal_of(
    connection_id: &str,
    user_id: Option<&str>,
    projects: Option<&[String]>,
    expires_at: Option<u64>,
) -> Option<RenewToken> {
    Some(RenewToken {
        id: ConnectionId::parse(connection_id)?,
        user_id: user_id.map(UserId::parse).transpose().ok()?,
        projects: ProjectAccess::from_list(projects),
        expires_at,
    })
}
