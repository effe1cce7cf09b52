//! The `text/event-stream` encoder.
//!
//! An event is encoded once into a shared [`Bytes`] and the same bytes are
//! handed to every matching stream. The encoder guarantees that whatever a
//! publisher sends, one call produces exactly one SSE event: CR and LF never
//! reach a field's value, so no payload can inject a field (`id:`, `retry:`)
//! or end the event early. Published `data` is compact JSON, which has no raw
//! line breaks; the splitting of multi-line `data` is still done here so the
//! guarantee does not depend on the caller.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;

use super::{EventId, StoredEvent};

/// Builds one SSE event field by field.
#[derive(Debug)]
pub struct FrameBuilder {
    buf: BytesMut,
}

impl Default for FrameBuilder {
    fn default() -> Self {
        Self::with_capacity(128)
    }
}

impl FrameBuilder {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(capacity),
        }
    }

    /// `retry: <ms>`: how long an `EventSource` waits before reconnecting.
    pub fn retry(mut self, retry: Duration) -> Self {
        self.single_line_field("retry", &retry.as_millis().to_string());
        self
    }

    pub fn id(mut self, id: EventId) -> Self {
        self.single_line_field("id", &id.to_string());
        self
    }

    pub fn event(mut self, name: &str) -> Self {
        self.single_line_field("event", name);
        self
    }

    /// One `data:` line per line of `data`; CR, LF and CRLF all split.
    pub fn data(mut self, data: &str) -> Self {
        let mut rest = data;
        loop {
            match rest.find(['\r', '\n']) {
                Some(pos) => {
                    self.line("data", &rest[..pos]);
                    let skip = if rest[pos..].starts_with("\r\n") {
                        2
                    } else {
                        1
                    };
                    rest = &rest[pos + skip..];
                }
                None => {
                    self.line("data", rest);
                    break;
                }
            }
        }
        self
    }

    /// `data:` carrying `value` as compact JSON on one line.
    pub fn json_data(mut self, value: &Value) -> Self {
        // serde_json escapes control characters inside strings, so the
        // compact form never contains a raw CR or LF: it goes straight into
        // the frame, with no intermediate string. (The property tests below
        // hold it to that.)
        self.buf.put_slice(b"data: ");
        let mut writer = (&mut self.buf).writer();
        if serde_json::to_writer(&mut writer, value).is_err() {
            // Unreachable for a `Value` (string keys, finite numbers).
            self.buf.put_slice(b"null");
        }
        self.buf.put_u8(b'\n');
        self
    }

    pub fn finish(mut self) -> Bytes {
        self.buf.put_u8(b'\n');
        self.buf.freeze()
    }

    /// Fields other than `data` cannot be continued on a second line, so line
    /// breaks (and NUL, which makes browsers ignore an `id`) are dropped.
    fn single_line_field(&mut self, name: &str, value: &str) {
        if value.contains(['\r', '\n', '\0']) {
            let cleaned: String = value
                .chars()
                .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
                .collect();
            self.line(name, &cleaned);
        } else {
            self.line(name, value);
        }
    }

    fn line(&mut self, name: &str, value: &str) {
        self.buf.reserve(name.len() + value.len() + 3);
        self.buf.put_slice(name.as_bytes());
        self.buf.put_slice(b": ");
        self.buf.put_slice(value.as_bytes());
        self.buf.put_u8(b'\n');
    }
}

/// The frame of a published event: `id` (when stored), `event`, `data`.
pub fn encode_event(event: &StoredEvent) -> Bytes {
    let mut builder = FrameBuilder::default();
    if let Some(id) = event.id {
        builder = builder.id(id);
    }
    builder
        .event(event.event_type.as_str())
        .json_data(&event.data)
        .finish()
}

/// A broker-generated event (`connected`, `heartbeat`, `shutdown`, ...): no id,
/// so it never moves a client's resume point.
pub fn encode_control(name: &str, data: &Value) -> Bytes {
    FrameBuilder::default().event(name).json_data(data).finish()
}

/// A control event that moves the client's resume point to `id`.
pub fn encode_control_with_id(name: &str, id: EventId, data: &Value) -> Bytes {
    FrameBuilder::default()
        .id(id)
        .event(name)
        .json_data(data)
        .finish()
}

/// A control event preceded by a `retry:` hint.
pub fn encode_control_with_retry(name: &str, data: &Value, retry: Duration) -> Bytes {
    FrameBuilder::default()
        .retry(retry)
        .event(name)
        .json_data(data)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventType;
    use proptest::prelude::*;
    use serde_json::json;

    /// A parsed SSE event, per the WHATWG "interpret an event stream" steps.
    #[derive(Debug, Default, PartialEq)]
    struct Parsed {
        id: Option<String>,
        event: Option<String>,
        data: Option<String>,
        retry: Option<String>,
    }

    /// Parses a whole stream; returns the dispatched events and whether the
    /// input ended exactly at an event boundary.
    fn parse_stream(input: &str) -> (Vec<Parsed>, bool) {
        let mut events = Vec::new();
        let mut current = Parsed::default();
        let mut pending = false;
        let normalized = input.replace("\r\n", "\n").replace('\r', "\n");
        let mut lines: Vec<&str> = normalized.split('\n').collect();
        let complete = lines.last() == Some(&"");
        lines.pop();
        for line in lines {
            if line.is_empty() {
                if pending {
                    if let Some(data) = current.data.as_mut() {
                        data.pop();
                    }
                    events.push(std::mem::take(&mut current));
                    pending = false;
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (name, value) = match line.find(':') {
                Some(pos) => {
                    let value = &line[pos + 1..];
                    (&line[..pos], value.strip_prefix(' ').unwrap_or(value))
                }
                None => (line, ""),
            };
            pending = true;
            match name {
                "id" => current.id = Some(value.to_owned()),
                "event" => current.event = Some(value.to_owned()),
                "retry" => current.retry = Some(value.to_owned()),
                "data" => {
                    let data = current.data.get_or_insert_with(String::new);
                    data.push_str(value);
                    data.push('\n');
                }
                _ => {}
            }
        }
        (events, complete && !pending)
    }

    fn stored(event_type: &str, data: Value, id: Option<i64>) -> StoredEvent {
        StoredEvent {
            id: id.map(EventId),
            event_type: EventType::parse(event_type).unwrap(),
            data,
            project_id: None,
            user_id: None,
            task_id: None,
            created_at_ms: 0,
            trace_context: None,
        }
    }

    #[test]
    fn a_stored_event_encodes_id_event_and_compact_json_data() {
        let frame = encode_event(&stored(
            "progress_update",
            json!({"progress": 75, "message": "Update completed"}),
            Some(42),
        ));
        assert_eq!(
            frame,
            "id: 42\nevent: progress_update\ndata: {\"message\":\"Update completed\",\"progress\":75}\n\n"
        );
    }

    #[test]
    fn an_unpersisted_event_has_no_id_line() {
        let frame = encode_event(&stored("commit", json!({"a": 1}), None));
        assert_eq!(frame, "event: commit\ndata: {\"a\":1}\n\n");
    }

    #[test]
    fn a_json_string_is_sent_quoted_with_line_breaks_escaped() {
        let frame = encode_event(&stored("commit", json!("line1\nline2\r\nid: 9"), Some(1)));
        assert_eq!(
            frame,
            "id: 1\nevent: commit\ndata: \"line1\\nline2\\r\\nid: 9\"\n\n"
        );
    }

    #[test]
    fn multi_line_data_is_split_into_several_data_lines() {
        let frame = FrameBuilder::default()
            .event("x")
            .data("a\nb\r\nc\rd")
            .finish();
        assert_eq!(frame, "event: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
    }

    #[test]
    fn retry_hint_comes_first_in_milliseconds() {
        let frame = encode_control_with_retry("shutdown", &json!({}), Duration::from_millis(2500));
        assert_eq!(frame, "retry: 2500\nevent: shutdown\ndata: {}\n\n");
    }

    proptest! {
        /// Whatever string a publisher sends as data, the stream carries
        /// exactly one event whose data decodes back to it.
        #[test]
        fn no_json_payload_can_inject_a_field_or_split_the_event(s in "\\PC*|[\\r\\n\\t :a-z0-9]*") {
            let value = json!({ "text": s, "nested": [s.clone()] });
            let frame = encode_event(&stored("commit", value.clone(), Some(7)));
            let text = std::str::from_utf8(&frame).unwrap();
            let (events, complete) = parse_stream(text);
            prop_assert!(complete);
            prop_assert_eq!(events.len(), 1);
            prop_assert_eq!(events[0].id.as_deref(), Some("7"));
            prop_assert_eq!(events[0].event.as_deref(), Some("commit"));
            prop_assert_eq!(events[0].retry.as_deref(), None);
            let decoded: Value = serde_json::from_str(events[0].data.as_deref().unwrap()).unwrap();
            prop_assert_eq!(decoded, value);
        }

        /// Raw (non-JSON) data with arbitrary line breaks still yields one
        /// event whose data is the input with line breaks normalised to LF.
        #[test]
        fn raw_data_with_line_breaks_stays_one_event(s in "[\\r\\na-z:]{0,40}", name in "[\\r\\na-z:]{1,10}") {
            let frame = FrameBuilder::default().event(&name).data(&s).finish();
            let text = std::str::from_utf8(&frame).unwrap();
            let (events, complete) = parse_stream(text);
            prop_assert!(complete);
            prop_assert_eq!(events.len(), 1);
            let expected = s.replace("\r\n", "\n").replace('\r', "\n");
            prop_assert_eq!(events[0].data.as_deref(), Some(expected.as_str()));
            let expected_name: String = name.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            prop_assert_eq!(events[0].event.as_deref(), Some(expected_name.as_str()));
            prop_assert_eq!(events[0].id.as_deref(), None);
        }
    }
}
