//! The identifiers that cross the HTTP edge, each parsed once: event ids,
//! projects, users, task references, idempotency keys, trace contexts.

use std::{fmt, sync::Arc};

use serde::Serialize;

use super::event::EventError;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_must_be_a_plain_decimal() {
        assert_eq!(EventId::parse("42").unwrap(), EventId(42));
        assert_eq!(EventId::parse(" 7 ").unwrap(), EventId(7));
        for bad in ["", "-1", "1e3", "abc", "0x10", "99999999999999999999"] {
            assert!(EventId::parse(bad).is_err(), "{bad:?}");
        }
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
