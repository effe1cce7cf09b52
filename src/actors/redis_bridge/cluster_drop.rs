//! `DELETE /sse/connections/{id}` for a stream on another instance.
//!
//! Like a renewal (see `cluster_renewal`): the instance the request landed
//! on, holding no such stream, asks the cluster over the control channel;
//! the one instance holding it drops it, if the operator's projects cover
//! it, and pushes that onto a reply list; the others stay silent. No reply
//! within the timeout: no such stream (or none the operator may drop).

use actix::{ActorFutureExt, Context, Handler, Message, ResponseActFuture, WrapFuture};

use super::{
    RedisBridge,
    control_call::NoAnswer,
    wire::{ControlRequest, DropReply},
};
use crate::{actors::registry::Disconnect, domain::ProjectAccess, stream::ConnectionId};

/// Drop a stream that is not on this instance; answers whether one was,
/// or that the others cannot be asked (Redis does not answer).
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, ClusterUnreachable>")]
pub struct DropClusterStream(pub Disconnect);

/// The other instances cannot be asked now: whether one holds the stream
/// is not known.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{}", crate::actors::registry::CLUSTER_UNREACHABLE)]
pub struct ClusterUnreachable;

impl Handler<DropClusterStream> for RedisBridge {
    type Result = ResponseActFuture<Self, Result<bool, ClusterUnreachable>>;

    fn handle(&mut self, msg: DropClusterStream, _: &mut Context<Self>) -> Self::Result {
        let DropClusterStream(drop) = msg;
        let call = self.control_call("drop");
        let ask = async move {
            let reply = call
                .ask_holder::<DropReply>(|reply_to| ControlRequest::DropConnection {
                    reply_to,
                    connection_id: drop.id.to_string(),
                    projects: drop.scope.to_list(),
                })
                .await;
            match reply {
                Ok(reply) => Ok(reply.outcome == DROPPED),
                Err(NoAnswer::Silence) => Ok(false),
                Err(NoAnswer::Unavailable(error)) => {
                    tracing::warn!(error.message = %error, "cannot ask the cluster to drop a stream");
                    Err(ClusterUnreachable)
                }
            }
        };
        Box::pin(ask.into_actor(self).map(|dropped, _, _| dropped))
    }
}

/// The holder's word for a stream it dropped.
const DROPPED: &str = "dropped";

impl RedisBridge {
    /// Drops the stream if it is on this instance and the operator covers
    /// it, and says so; says nothing otherwise.
    pub(super) fn answer_drop(
        &mut self,
        reply_to: String,
        drop: Option<Disconnect>,
        ctx: &mut Context<Self>,
    ) {
        let Some(drop) = drop else {
            return;
        };
        let registry = self.registry.clone();
        let answer = async move {
            matches!(registry.send(drop).await, Ok(true)).then(|| DropReply {
                outcome: DROPPED.to_owned(),
            })
        };
        self.answer_as_holder(reply_to, "a stream's drop", answer, ctx);
    }
}

/// The drop a control request asks for, when it reads.
pub(super) fn drop_of(connection_id: &str, projects: Option<&[String]>) -> Option<Disconnect> {
    Some(Disconnect {
        id: ConnectionId::parse(connection_id)?,
        scope: ProjectAccess::from_list(projects),
    })
}
