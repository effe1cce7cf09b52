//! Events as publishers send them and as the store hands them back.
//!
//! Every identifier that crosses the HTTP edge is parsed here once
//! (`EventType::parse`, `EventId::parse`, ...), so the rest of the broker never
//! re-checks a string.

use std::{collections::BTreeSet, fmt, sync::Arc};

use serde::Serialize;
use serde_json::Value;

/// Why a publisher's event was refused. Mapped to HTTP in `crate::error`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    #[error(
        "an event type is 1 to 64 characters: a lowercase letter, then lowercase letters, \
         digits, _ . or -; got {}",
        super::quoted_input(.0)
    )]
    MalformedType(String),
    #[error(
        "unknown event type {}; valid types: {}",
        super::quoted_input(given),
        valid.join(", ")
    )]
    UnknownType { given: String, valid: Vec<String> },
    #[error("{0}")]
    InvalidPayload(String),
    #[error("{field} must be 1 to 128 letters, digits or _ . : @ -")]
    InvalidIdentifier { field: &'static str },
    #[error("Last-Event-ID must be a non-negative decimal integer")]
    InvalidEventId,
}

/// An event type name: `[a-z][a-z0-9_.-]{0,63}`. Cheap to clone (shared).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(Arc<str>);

impl EventType {
    pub fn parse(raw: &str) -> Result<Self, EventError> {
        let bytes = raw.as_bytes();
        let well_formed = !bytes.is_empty()
            && bytes.len() <= 64
            && bytes[0].is_ascii_lowercase()
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(b));
        if well_formed {
            Ok(Self(Arc::from(raw)))
        } else {
            Err(EventError::MalformedType(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a shared string (a reference count, not a copy).
    pub fn shared(&self) -> Arc<str> {
        Arc::clone(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The event types this broker accepts: the built-in set plus `--event-types`.
#[derive(Debug, Clone)]
pub struct EventTypeCatalog {
    known: Arc<BTreeSet<EventType>>,
}

impl EventTypeCatalog {
    /// Types every broker accepts. The last four belong to task streams.
    pub const BUILT_IN: [&'static str; 10] = [
        "file_change",
        "commit",
        "progress_update",
        "risk_alert",
        "task_update",
        "system_status",
        "progress",
        "text",
        "complete",
        "error",
    ];

    pub fn new(extra: &[EventType]) -> Self {
        let mut known: BTreeSet<EventType> = Self::BUILT_IN
            .iter()
            .map(|name| EventType::parse(name).expect("built-in types are well formed"))
            .collect();
        known.extend(extra.iter().cloned());
        Self {
            known: Arc::new(known),
        }
    }

    /// Parses a publisher- or subscriber-supplied type and checks it is known.
    pub fn resolve(&self, raw: &str) -> Result<EventType, EventError> {
        let parsed = EventType::parse(raw);
        match parsed {
            Ok(event_type) if self.known.contains(&event_type) => Ok(event_type),
            _ => Err(EventError::UnknownType {
                given: raw.to_owned(),
                valid: self.names(),
            }),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.known.iter().map(|t| t.to_string()).collect()
    }

    /// Parses a comma-separated `event_types` list; empty means all types.
    pub fn filter(&self, raw: Option<&str>) -> Result<super::TypeFilter, EventError> {
        let names: Vec<&str> = raw
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() {
            return Ok(super::TypeFilter::All);
        }
        let types = names
            .into_iter()
            .map(|name| self.resolve(name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(super::TypeFilter::only(types))
    }

    pub fn iter(&self) -> impl Iterator<Item = &EventType> {
        self.known.iter()
    }
}

/// A persisted event's id: assigned by the event store, strictly increasing
/// in delivery order, so the last id a client saw is a safe resume point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EventId(pub i64);

impl EventId {
    /// Parses a `Last-Event-ID` header or `last_event_id` query value.
    pub fn parse(raw: &str) -> Result<Self, EventError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.len() > 19 || !trimmed.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(EventError::InvalidEventId);
        }
        trimmed
            .parse::<i64>()
            .map(Self)
            .map_err(|_| EventError::InvalidEventId)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

fn parse_identifier(raw: &str, field: &'static str) -> Result<Arc<str>, EventError> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b));
    if ok {
        Ok(Arc::from(raw))
    } else {
        Err(EventError::InvalidIdentifier { field })
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, EventError> {
                parse_identifier(raw, $field).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

identifier!(
    /// A project scope: streams filtered to a project see only its events.
    ProjectId,
    "project_id"
);
identifier!(
    /// A user id (a token's `sub`): events carrying one are private to that user.
    UserId,
    "user_id"
);
identifier!(
    /// A task id, `[A-Za-z0-9_-]{1,128}` at the task API's edge.
    TaskRef,
    "task_id"
);

/// The published `data`, validated against its type's payload rules.
#[derive(Debug, Clone, PartialEq)]
pub struct EventData(Value);

impl EventData {
    /// Typed payloads: `progress_update`/`progress` need `progress` in 0–100,
    /// `text` needs a string `delta`. Other types take any JSON value.
    pub fn validate(event_type: &EventType, data: Value) -> Result<Self, EventError> {
        match event_type.as_str() {
            "progress_update" | "progress" => {
                let progress = data.get("progress").and_then(Value::as_f64);
                match progress {
                    Some(p) if (0.0..=100.0).contains(&p) => {}
                    Some(_) => {
                        return Err(EventError::InvalidPayload(format!(
                            "{event_type} needs data.progress between 0 and 100"
                        )));
                    }
                    None => {
                        return Err(EventError::InvalidPayload(format!(
                            "{event_type} needs data.progress as a number between 0 and 100"
                        )));
                    }
                }
            }
            "text" if !data.get("delta").is_some_and(Value::is_string) => {
                return Err(EventError::InvalidPayload(
                    "text needs data.delta as a string".into(),
                ));
            }
            _ => {}
        }
        Ok(Self(data))
    }

    /// Wraps data produced by the broker itself (already well formed).
    pub fn trusted(data: Value) -> Self {
        Self(data)
    }

    pub fn as_value(&self) -> &Value {
        &self.0
    }

    pub fn into_value(self) -> Value {
        self.0
    }
}

/// An event accepted from a publisher, not yet stored.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: EventType,
    pub data: EventData,
    pub project_id: Option<ProjectId>,
    pub user_id: Option<UserId>,
    pub task_id: Option<TaskRef>,
    pub persist: bool,
    pub idempotency_key: Option<IdempotencyKey>,
    /// Publish time, ms since the epoch: the start of publish→deliver latency.
    pub published_at_ms: i64,
    /// The publishing span's W3C `traceparent`, so delivery and replay on
    /// any instance join the publisher's trace.
    pub trace_context: Option<TraceParent>,
}

/// A publisher's `idempotency_key`, scoped to who published (the token's
/// subject) and for which project. Two tenants that happen to pick the same
/// key never match each other's events: a repeat is recognised only when
/// the same publisher sends it for the same project.
///
/// Stored as one string, `subject US project US key` (US = U+001F). The
/// subject and project are identifiers, which never contain U+001F, so the
/// encoding is unambiguous whatever the key holds, and the store's unique
/// index on the column keeps working across instances and restarts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key a publisher may send.
    pub const MAX_LEN: usize = 200;
    const SEPARATOR: char = '\u{1f}';

    /// Checks a publisher's key (1 to [`Self::MAX_LEN`] bytes, no control
    /// characters) and scopes it. `publisher` is `None` when authentication
    /// is off: every caller is then the same publisher.
    pub fn scoped(
        key: &str,
        publisher: Option<&UserId>,
        project: Option<&ProjectId>,
    ) -> Result<Self, EventError> {
        if key.is_empty() || key.len() > Self::MAX_LEN || key.chars().any(char::is_control) {
            return Err(EventError::InvalidPayload(format!(
                "idempotency_key must be 1 to {} printable characters",
                Self::MAX_LEN
            )));
        }
        let subject = publisher.map_or("", UserId::as_str);
        let project = project.map_or("", ProjectId::as_str);
        let sep = Self::SEPARATOR;
        Ok(Self(format!("{subject}{sep}{project}{sep}{key}")))
    }

    /// The stored form (the scope and the key).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A W3C `traceparent` header value (`00-<trace id>-<span id>-<flags>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(Arc<str>);

impl TraceParent {
    /// `None` unless `raw` has the W3C shape (version 00, non-zero ids).
    pub fn parse(raw: &str) -> Option<Self> {
        let parts: Vec<&str> = raw.trim().split('-').collect();
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && s.bytes().any(|b| b != b'0')
        };
        match parts.as_slice() {
            [version, trace, span, flags]
                if *version == "00" && hex(trace, 32) && hex(span, 16) && flags.len() == 2 =>
            {
                Some(Self(Arc::from(raw.trim())))
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event as delivered: stored ones have an `id`, `persist: false` ones do not.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub id: Option<EventId>,
    pub event_type: EventType,
    pub data: Value,
    pub project_id: Option<ProjectId>,
    pub user_id: Option<UserId>,
    pub task_id: Option<TaskRef>,
    /// Publish time, ms since the epoch.
    pub created_at_ms: i64,
    #[serde(skip)]
    pub trace_context: Option<TraceParent>,
}

/// A stored event as plain strings (a store row, a message between
/// instances), before its identifiers are parsed again.
pub struct RawEvent<'a> {
    pub id: Option<i64>,
    pub event_type: &'a str,
    pub data: Value,
    pub project_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub task_id: Option<&'a str>,
    pub created_at_ms: i64,
    pub trace_context: Option<&'a str>,
}

impl StoredEvent {
    /// Rebuilds an event from plain strings; `None` if one no longer parses
    /// (edited by hand, or sent by an incompatible version).
    pub fn from_raw(raw: RawEvent<'_>) -> Option<Self> {
        Some(Self {
            id: raw.id.map(EventId),
            event_type: EventType::parse(raw.event_type).ok()?,
            data: raw.data,
            project_id: raw.project_id.map(ProjectId::parse).transpose().ok()?,
            user_id: raw.user_id.map(UserId::parse).transpose().ok()?,
            task_id: raw.task_id.map(TaskRef::parse).transpose().ok()?,
            created_at_ms: raw.created_at_ms,
            // A malformed context loses the trace link, not the event.
            trace_context: raw.trace_context.and_then(TraceParent::parse),
        })
    }

    /// A task's last event: `complete`, or `error` (failed, cancelled).
    pub fn ends_task(&self) -> bool {
        self.task_id.is_some() && matches!(self.event_type.as_str(), "complete" | "error")
    }

    pub fn from_new(event: NewEvent, id: Option<EventId>) -> Self {
        Self {
            id,
            event_type: event.event_type,
            data: event.data.into_value(),
            project_id: event.project_id,
            user_id: event.user_id,
            task_id: event.task_id,
            created_at_ms: event.published_at_ms,
            trace_context: event.trace_context,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_type_accepts_the_documented_grammar() {
        for ok in ["a", "progress_update", "x.y-z_9", &"a".repeat(64)] {
            assert!(EventType::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn event_type_rejects_uppercase_leading_digit_and_overlong_names() {
        for bad in ["", "A", "9a", "_a", "a b", "a\nb", "é", &"a".repeat(65)] {
            assert!(EventType::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn catalog_refuses_an_unknown_type_with_the_valid_list() {
        let catalog = EventTypeCatalog::new(&[EventType::parse("deploy").unwrap()]);
        assert!(catalog.resolve("deploy").is_ok());
        let Err(EventError::UnknownType { valid, .. }) = catalog.resolve("nope") else {
            panic!("expected UnknownType");
        };
        assert!(valid.contains(&"commit".to_string()) && valid.contains(&"deploy".to_string()));
    }

    #[test]
    fn last_event_id_must_be_a_plain_decimal() {
        assert_eq!(EventId::parse("42").unwrap(), EventId(42));
        assert_eq!(EventId::parse(" 7 ").unwrap(), EventId(7));
        for bad in ["", "-1", "1e3", "abc", "0x10", "99999999999999999999"] {
            assert!(EventId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn progress_payload_must_be_a_number_in_range() {
        let t = EventType::parse("progress_update").unwrap();
        assert!(EventData::validate(&t, json!({"progress": 0})).is_ok());
        assert!(EventData::validate(&t, json!({"progress": 100.0})).is_ok());
        assert!(EventData::validate(&t, json!({"progress": 101})).is_err());
        assert!(EventData::validate(&t, json!({"progress": "50"})).is_err());
        assert!(EventData::validate(&t, json!({})).is_err());
    }

    #[test]
    fn text_payload_needs_a_string_delta() {
        let t = EventType::parse("text").unwrap();
        assert!(EventData::validate(&t, json!({"delta": "hi"})).is_ok());
        assert!(EventData::validate(&t, json!({"delta": 1})).is_err());
    }

    #[test]
    fn the_same_idempotency_key_from_two_publishers_or_projects_is_two_keys() {
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let p1 = ProjectId::parse("p1").unwrap();
        let p2 = ProjectId::parse("p2").unwrap();
        let key = |user, project| IdempotencyKey::scoped("K", user, project).unwrap();
        assert_eq!(key(Some(&alice), Some(&p1)), key(Some(&alice), Some(&p1)));
        assert_ne!(key(Some(&alice), Some(&p1)), key(Some(&bob), Some(&p1)));
        assert_ne!(key(Some(&alice), Some(&p1)), key(Some(&alice), Some(&p2)));
        assert_ne!(
            key(Some(&alice), None),
            key(None, Some(&alice_as_project()))
        );
        // A key cannot forge another scope: it never holds the separator.
        assert!(IdempotencyKey::scoped("p1\u{1f}K", Some(&alice), None).is_err());
    }

    fn alice_as_project() -> ProjectId {
        ProjectId::parse("alice").unwrap()
    }

    #[test]
    fn an_idempotency_key_must_be_short_and_printable() {
        assert!(IdempotencyKey::scoped("", None, None).is_err());
        assert!(IdempotencyKey::scoped(&"k".repeat(201), None, None).is_err());
        assert!(IdempotencyKey::scoped("a\nb", None, None).is_err());
        assert!(IdempotencyKey::scoped(&"k".repeat(200), None, None).is_ok());
    }

    #[test]
    fn identifiers_refuse_control_characters_and_overlong_values() {
        assert!(ProjectId::parse("p1").is_ok());
        assert!(ProjectId::parse("a\r\nb").is_err());
        assert!(UserId::parse(&"u".repeat(129)).is_err());
    }
}
