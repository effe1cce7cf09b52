//! What a request to the whole cluster over the control channel needs
//! (a listing, a renewal, a subscription change): the publisher while the
//! link is up, a client for the blocking wait, the channel, and a reply
//! list of its own.

use std::{future::Future, time::Duration};

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    LinkState, RedisBridge,
    wire::{ControlMessage, ControlRequest, push_reply},
};

/// How long a request about one stream waits for the instance holding it.
pub(super) const HOLDER_TIMEOUT: Duration = Duration::from_millis(1500);

pub(super) struct ControlCall {
    /// `None` while the link to Redis is down.
    pub publisher: Option<ConnectionManager>,
    pub client: redis::Client,
    pub control: String,
    /// The list every instance pushes its answer onto.
    pub reply_to: String,
    /// Who asks, from which store: see `strangers`.
    pub origin: String,
    pub store: Option<i64>,
}

/// A connection of its own for a BLPOP of up to `wait` (it blocks its
/// connection), whose response timeout outlasts the wait: redis' default,
/// 500 ms, would end a silence as an error, and miss an answer after it.
pub(super) async fn waiting_connection(
    client: &redis::Client,
    wait: Duration,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(wait + Duration::from_secs(1)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Why a request about one stream got no answer.
#[derive(Debug)]
pub(super) enum NoAnswer {
    /// Nobody answered in time: no instance holds the stream.
    Silence,
    /// The link to Redis is down or failed meanwhile.
    Unavailable(String),
}

impl ControlCall {
    /// `request` as published: with who asks, from which store.
    pub(super) fn payload(&self, request: ControlRequest) -> String {
        serde_json::to_string(&ControlMessage {
            store: self.store,
            origin: Some(self.origin.clone()),
            request,
        })
        .unwrap_or_default()
    }

    /// Publishes `request` (made for this call's reply list) and waits for
    /// the one instance holding the stream it is about to answer.
    pub(super) async fn ask_holder<R: DeserializeOwned>(
        self,
        request: impl FnOnce(String) -> ControlRequest,
    ) -> Result<R, NoAnswer> {
        let unavailable = |error: redis::RedisError| NoAnswer::Unavailable(error.to_string());
        let payload = self.payload(request(self.reply_to.clone()));
        let mut publisher = self
            .publisher
            .ok_or_else(|| NoAnswer::Unavailable("not connected".into()))?;
        publisher
            .publish::<_, _, i64>(&self.control, payload)
            .await
            .map_err(unavailable)?;
        let mut waiting = waiting_connection(&self.client, HOLDER_TIMEOUT)
            .await
            .map_err(unavailable)?;
        let popped: Option<(String, String)> = waiting
            .blpop(&self.reply_to, HOLDER_TIMEOUT.as_secs_f64())
            .await
            .map_err(unavailable)?;
        popped
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .ok_or(NoAnswer::Silence)
    }
}

impl RedisBridge {
    /// The holder's side of [`ControlCall::ask_holder`]: `answer` acts on
    /// the stream if it is on this instance and yields the reply, pushed
    /// onto `reply_to`; `None` (not here) stays silent. `what` names the
    /// request in a failure's log line.
    pub(super) fn answer_as_holder<R: Serialize>(
        &mut self,
        reply_to: String,
        what: &'static str,
        answer: impl Future<Output = Option<R>> + 'static,
        ctx: &mut Context<Self>,
    ) {
        let Some(mut publisher) = self.publisher.clone() else {
            return;
        };
        let reply = async move {
            let Some(reply) = answer.await else {
                return Ok(());
            };
            let body = serde_json::to_string(&reply).unwrap_or_default();
            push_reply(&mut publisher, &reply_to, body).await
        };
        ctx.spawn(reply.into_actor(self).map(move |result, _, _| {
            if let Err(error) = result {
                tracing::warn!(error.message = %error, "cannot answer {what}");
            }
        }));
    }

    /// A new call; `kind` names its reply list (`reply`, `renewal`).
    pub(super) fn control_call(&self, kind: &str) -> ControlCall {
        ControlCall {
            publisher: self
                .publisher
                .clone()
                .filter(|_| self.state == LinkState::Up),
            client: self.client.clone(),
            control: self.control_channel.clone(),
            reply_to: format!(
                "{}{kind}:{}",
                self.presence_prefix,
                uuid::Uuid::new_v4().simple()
            ),
            origin: self.instance_id.clone(),
            store: self.strangers.own_store(),
        }
    }
}
