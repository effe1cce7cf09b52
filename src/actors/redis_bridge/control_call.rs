//! What a request to the whole cluster over the control channel needs
//! (a listing, a renewal): the publisher while the link is up, a client
//! for the blocking wait, the channel, and a reply list of its own.

use redis::aio::ConnectionManager;

use super::{LinkState, RedisBridge};

pub(super) struct ControlCall {
    /// `None` while the link to Redis is down.
    pub publisher: Option<ConnectionManager>,
    pub client: redis::Client,
    pub control: String,
    /// The list every instance pushes its answer onto.
    pub reply_to: String,
}

impl RedisBridge {
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
        }
    }
}
