//! Routing: a batch of committed events to every stream that wants each,
//! in id order, then into the recently routed frames resumes read.

use actix::{Context, Handler, Message, MessageResult};

use super::{Registry, TaskEnded};
use crate::{
    domain::{EventId, StoredEvent, TaskId, sse_frame},
    stream::{Close, CloseReason, OutboundFrame},
};

impl Registry {
    /// Routes `event`; answers the frame it was sent as.
    fn route(&mut self, event: &StoredEvent) -> bytes::Bytes {
        // One span per routed event, child of the publisher's span, only
        // when spans are exported: nothing is built otherwise.
        let span = match &event.trace_context {
            Some(parent) if crate::telemetry::traces_exported() => {
                let span = tracing::info_span!(
                    "deliver",
                    sse.event.id = event.id.map(|id| id.0),
                    sse.event.type = %event.event_type,
                    sse.instance.id = %self.instance_id,
                    sse.deliveries = tracing::field::Empty,
                );
                crate::telemetry::adopt_parent(&span, parent);
                Some(span)
            }
            _ => None,
        };
        let frame = OutboundFrame::event(event, sse_frame::encode_event(event));
        let routed = self.table.route(event, &frame);
        self.counters
            .record_routed(&event.event_type, routed.delivered);
        self.metrics
            .record_routed(event, routed.delivered, routed.slow.len() as u64);
        if let Some(span) = span {
            span.record("sse.deliveries", routed.delivered);
        }
        if let (Some(watcher), Some(task)) = (&self.task_ends, &event.task_id)
            && event.ends_task()
            && let Ok(task_id) = TaskId::parse(task.as_str())
        {
            watcher.do_send(TaskEnded { task_id });
        }
        for closer in routed.finished {
            closer.do_send(Close {
                reason: CloseReason::TaskFinished,
            });
        }
        if !routed.slow.is_empty() {
            self.metrics.set_active_connections(self.table.len());
        }
        for entry in routed.slow {
            self.close_slow(entry);
        }
        frame.bytes.clone()
    }
}

/// Deliver events, in id order, to every matching stream.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Route {
    pub events: Vec<StoredEvent>,
    /// The last id committed before these events (`None` when none of them
    /// is stored); lets a cluster receiver detect a batch it missed.
    pub previous_id: Option<EventId>,
}

impl Handler<Route> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Route, _: &mut Context<Self>) {
        self.guarded((), |registry| {
            if let Some(highest) = msg.events.iter().filter_map(|e| e.id).max() {
                registry.routed_through = registry.routed_through.max(highest);
            }
            let mut routed = Vec::with_capacity(msg.events.len());
            for event in msg.events {
                let frame = registry.route(&event);
                routed.push((event, frame));
            }
            registry.recent.extend(msg.previous_id, routed);
        });
    }
}

/// The highest stored id routed to the streams so far.
#[derive(Debug, Message)]
#[rtype(result = "EventId")]
pub struct RoutedThrough;

impl Handler<RoutedThrough> for Registry {
    type Result = MessageResult<RoutedThrough>;

    fn handle(&mut self, _: RoutedThrough, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.routed_through)
    }
}
