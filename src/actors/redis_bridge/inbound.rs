//! What comes from Redis: the pushes of the subscription, committed
//! batches of every instance (this one's included) and control requests.

use actix::{Context, StreamHandler};
use redis::{PushInfo, PushKind};

use super::{
    LinkState, RedisBridge,
    wire::{ControlMessage, Envelope, WireEvent},
};
use crate::{actors::registry::Route, domain::EventId};

impl StreamHandler<PushInfo> for RedisBridge {
    fn handle(&mut self, push: PushInfo, ctx: &mut Context<Self>) {
        match push.kind {
            PushKind::Message => {
                let Some(message) = redis::Msg::from_push_info(push) else {
                    return;
                };
                if message.get_channel_name() == self.control_channel {
                    match serde_json::from_slice::<ControlMessage>(message.get_payload_bytes()) {
                        Ok(control) => {
                            let origin = control.origin.as_deref().unwrap_or("unnamed");
                            if self.strangers.admit(control.store, origin) {
                                self.answer_control(control.request, ctx);
                            }
                        }
                        Err(error) => self.strangers.malformed("control", &error),
                    }
                    return;
                }
                let envelope: Envelope = match serde_json::from_slice(message.get_payload_bytes()) {
                    Ok(envelope) => envelope,
                    Err(error) => return self.strangers.malformed("events", &error),
                };
                if !self.strangers.admit(envelope.store, &envelope.origin) {
                    return;
                }
                let echo = self
                    .local
                    .take_echo(envelope.origin == self.instance_id, envelope.batch);
                let events = envelope
                    .events
                    .into_iter()
                    .filter_map(WireEvent::into_domain)
                    .filter(|event| !echo || event.id.is_some())
                    .collect();
                self.accept(
                    Route {
                        events,
                        previous_id: envelope.previous_id.map(EventId),
                    },
                    ctx,
                );
            }
            PushKind::Disconnection => self.mark_down("connection to Redis lost".into()),
            PushKind::Subscribe if self.state != LinkState::Up => self.link_up(ctx),
            _ => {}
        }
    }

    /// The push channel never ends while the subscriber lives; if it does,
    /// reconnect from scratch.
    fn finished(&mut self, _: &mut Context<Self>) {
        self.subscriber = None;
        self.publisher = None;
        self.mark_down("subscription ended".into());
    }
}
