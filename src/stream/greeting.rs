//! `Greeting`: a stream's first frame, `connected`, queued by the Registry
//! as it admits the stream, so nothing routed can come before it.

use std::time::Duration;

use serde_json::Value;

use super::OutboundFrame;
use crate::domain::{EventId, sse_frame::FrameBuilder};

/// The `connected` frame of one stream.
#[derive(Debug, Clone)]
pub struct Greeting {
    data: Value,
    retry: Duration,
    /// A stream that starts live (no resume point, not a task's stream)
    /// is told where it starts: `id:` is the last id routed before it was
    /// admitted. A client that drops before its first event then resumes
    /// from there (the browser sends it back as `Last-Event-ID`) instead
    /// of from "now", which would miss what was published meanwhile.
    starts_live: bool,
}

impl Greeting {
    pub fn new(data: Value, retry: Duration, starts_live: bool) -> Self {
        Self {
            data,
            retry,
            starts_live,
        }
    }

    /// The id the frame gives the client as its resume point, for a stream
    /// admitted once everything up to `routed_through` was routed.
    pub fn resume_point(&self, routed_through: EventId) -> Option<EventId> {
        (self.starts_live && routed_through.0 > 0).then_some(routed_through)
    }

    /// The frame, for a stream admitted once everything up to
    /// `routed_through` was routed.
    pub fn frame(&self, routed_through: EventId) -> OutboundFrame {
        let mut builder = FrameBuilder::default().retry(self.retry);
        if self.starts_live {
            builder = builder.id(routed_through);
        }
        OutboundFrame::control(builder.event("connected").json_data(&self.data).finish())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_live_start_names_its_position_and_a_resume_does_not() {
        let data = json!({ "connection_id": "c1" });
        let live = Greeting::new(data.clone(), Duration::from_secs(3), true).frame(EventId(41));
        assert_eq!(
            &live.bytes[..],
            b"retry: 3000\nid: 41\nevent: connected\ndata: {\"connection_id\":\"c1\"}\n\n"
        );
        assert_eq!(live.event_id, None, "a control frame, not a stored event");
        let resumed = Greeting::new(data, Duration::from_secs(3), false).frame(EventId(41));
        assert!(!String::from_utf8_lossy(&resumed.bytes).contains("id:"));
    }
}
