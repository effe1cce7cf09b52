//! Event types: the `[a-z][a-z0-9_.-]{0,63}` names, and the catalogue of
//! the types this broker accepts.

use std::{collections::BTreeSet, fmt, sync::Arc};

use serde::Serialize;

use super::{Task, TypeFilter, event::EventError};

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

/// The names of the broker's own frames on a stream (its connection, its
/// end, its resume, its token): never a publishable type, or a publisher
/// could tell every client to reconnect, or pose as the broker.
pub const CONTROL_EVENT_TYPES: [&str; 9] = [
    "connected",
    "heartbeat",
    "shutdown",
    "server_shutdown",
    "replay_truncated",
    "replay_reset",
    "subscription_updated",
    "token_expiring",
    "token_expired",
];

/// The event types this broker accepts: the built-in set plus `--event-types`.
#[derive(Debug, Clone)]
pub struct EventTypeCatalog {
    known: Arc<BTreeSet<EventType>>,
}

impl EventTypeCatalog {
    /// Types every broker accepts besides a task stream's own.
    const GENERAL: [&'static str; 6] = [
        "file_change",
        "commit",
        "progress_update",
        "risk_alert",
        "task_update",
        "system_status",
    ];

    /// Types every broker accepts: the general ones, then a task stream's.
    pub fn built_in() -> impl Iterator<Item = &'static str> {
        Self::GENERAL.into_iter().chain(Task::STREAM_EVENT_TYPES)
    }

    pub fn new(extra: &[EventType]) -> Self {
        let mut known: BTreeSet<EventType> = Self::built_in()
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
    pub fn filter(&self, raw: Option<&str>) -> Result<TypeFilter, EventError> {
        let names: Vec<&str> = raw
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() {
            return Ok(TypeFilter::All);
        }
        let types = names
            .into_iter()
            .map(|name| self.resolve(name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TypeFilter::only(types))
    }

    pub fn iter(&self) -> impl Iterator<Item = &EventType> {
        self.known.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
