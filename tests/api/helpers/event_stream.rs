//! `EventStream`: reads SSE events off a real, streaming HTTP response.
//!
//! The bytes go through the broker library's own WHATWG parser
//! ([`sse_broker::domain::SseParser`], unit-tested there), so frames split
//! across TCP chunks (or several frames in one chunk) parse the same. As
//! there, [`SseEvent::id`] is the `id` field *of this event*, so a test can
//! see that an unpersisted event carries no id line, and
//! [`EventStream::last_event_id`] keeps the spec's sticky value.

use std::{fmt, ops::Deref, time::Duration};

use reqwest::header::HeaderMap;
use serde_json::Value;
use sse_broker::domain::{SseParser, sse_parser};
use tokio::time::Instant;

/// One dispatched SSE event: the parser's event (its fields read through),
/// plus the checks tests make on it.
#[derive(Clone, PartialEq, Eq)]
pub struct SseEvent(sse_parser::SseEvent);

impl Deref for SseEvent {
    type Target = sse_parser::SseEvent;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl fmt::Debug for SseEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl SseEvent {
    /// The `data` parsed as JSON; panics (with the frame) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data of {self:?} is not JSON: {e}"))
    }

    /// The `id` as a number; panics when present but not decimal.
    pub fn id_number(&self) -> Option<i64> {
        self.id.as_ref().map(|id| {
            id.parse()
                .unwrap_or_else(|_| panic!("id of {self:?} is not a decimal integer"))
        })
    }

    pub fn is(&self, event_type: &str) -> bool {
        self.event.as_deref() == Some(event_type)
    }

    pub fn is_heartbeat(&self) -> bool {
        self.is("heartbeat")
    }
}

/// How the response body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The server finished the body cleanly.
    Finished,
    /// The connection broke (e.g. the broker aborted a slow stream).
    Broken(String),
}

/// An open `text/event-stream` response, read frame by frame.
pub struct EventStream {
    pub headers: HeaderMap,
    response: reqwest::Response,
    parser: SseParser,
    end: Option<StreamEnd>,
}

impl EventStream {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            headers: response.headers().clone(),
            response,
            parser: SseParser::new(),
            end: None,
        }
    }

    /// A stream response `who` answered: asserts 200 and reads the
    /// `connected` frame, so the stream is registered when this returns.
    pub async fn connected(response: reqwest::Response, who: &str) -> Self {
        let status = response.status().as_u16();
        assert_eq!(status, 200, "stream on {who} answered {status}");
        let mut events = Self::new(response);
        let first = events.next_event(super::SHORT).await;
        assert!(
            first.as_ref().is_some_and(|e| e.is("connected")),
            "first frame on {who} is {first:?} (end: {:?})",
            events.end()
        );
        events
    }

    /// The next event, or `None` when `timeout` passes first or the stream
    /// has ended (see [`EventStream::end`]).
    pub async fn next_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            // Without a line limit the parser has no error to give.
            if let Some(event) = self.parser.next_event().expect("no line limit") {
                return Some(SseEvent(event));
            }
            if self.end.is_some() {
                return None;
            }
            let chunk = match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_elapsed) => return None,
                Ok(chunk) => chunk,
            };
            match chunk {
                Ok(Some(bytes)) => self.parser.push(&bytes),
                Ok(None) => self.end = Some(StreamEnd::Finished),
                Err(error) => self.end = Some(StreamEnd::Broken(format!("{error:?}"))),
            }
        }
    }

    /// The next event that is not a heartbeat.
    pub async fn next_message(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self.next_event(left).await?;
            if !event.is_heartbeat() {
                return Some(event);
            }
        }
    }

    /// Exactly `count` non-heartbeat events; panics with what did arrive when
    /// they do not all arrive within `timeout`.
    pub async fn take_messages(&mut self, count: usize, timeout: Duration) -> Vec<SseEvent> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::with_capacity(count);
        while events.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message(left).await {
                Some(event) => events.push(event),
                None => panic!(
                    "expected {count} events within {timeout:?}, got {} (end: {:?}): {events:#?}",
                    events.len(),
                    self.end
                ),
            }
        }
        events
    }

    /// Asserts no non-heartbeat event arrives for `quiet`.
    pub async fn assert_quiet(&mut self, quiet: Duration) {
        if let Some(event) = self.next_message(quiet).await {
            panic!("expected no further event, got {event:?}");
        }
    }

    /// Reads until the body ends; returns the events read on the way.
    /// Panics if the stream is still open after `timeout`.
    pub async fn read_to_end(&mut self, timeout: Duration) -> Vec<SseEvent> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Some(event) => events.push(event),
                None if self.end.is_some() => return events,
                None => panic!(
                    "stream still open after {timeout:?}; read {} events, last: {:?}",
                    events.len(),
                    events.last()
                ),
            }
        }
    }

    /// How the body ended, once it has.
    pub fn end(&self) -> Option<&StreamEnd> {
        self.end.as_ref()
    }

    /// The spec's sticky last event ID: what a browser would resume from.
    pub fn last_event_id(&self) -> Option<&str> {
        self.parser.last_event_id()
    }
}
