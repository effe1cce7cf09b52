//! Telling this deployment's messages from another's on a shared Redis.
//!
//! A second deployment (staging beside production) on the same Redis must
//! use its own `--cluster-name`. When it does not, its committed batches
//! would reach this deployment's streams (another tenant's data, under ids
//! from another database, which would also stop this instance's own events
//! as "already routed"), and its operators' requests would act on this
//! deployment's streams. Every message and presence record therefore says
//! which database its instance stores in ([`EventStore::identity`]); one
//! from another database is ignored, counted, logged at most once a minute,
//! and `/health` warns while they keep coming. An SQLite file has an
//! identity of its own too: an instance on another file (which would hand
//! out colliding ids) is another deployment. A message that says nothing
//! (an instance of an older version) is taken as ours.
//!
//! [`EventStore::identity`]: crate::store::EventStore::identity

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::telemetry::{LogThrottle, Metrics};

/// How long `/health` keeps warning after the last foreign message.
pub const FOREIGN_WARNING_FOR: Duration = Duration::from_secs(120);
/// At most one log line per this for each kind of stray message.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The latest sign of another deployment on this cluster's channels.
#[derive(Debug, Clone, Serialize)]
pub struct ForeignSighting {
    /// The other deployment's instance, as it names itself.
    pub instance_id: String,
    /// Its messages and presence records ignored so far.
    pub ignored: u64,
    #[serde(skip)]
    pub at: Instant,
}

/// What the bridge knows of messages that are not its deployment's.
pub(super) struct Strangers {
    own_store: Option<i64>,
    /// This process's random number on its presence record: a record under
    /// this instance's id with another one was written by another process
    /// started with the same `--instance-id`.
    own_writer: u64,
    metrics: Metrics,
    sighting: Option<ForeignSighting>,
    id_clash_at: Option<Instant>,
    foreign_log: LogThrottle,
    malformed_log: LogThrottle,
    clash_log: LogThrottle,
}

impl Strangers {
    pub(super) fn new(own_store: Option<i64>, metrics: Metrics) -> Self {
        Self {
            own_store,
            own_writer: uuid::Uuid::new_v4().as_u64_pair().0,
            metrics,
            sighting: None,
            id_clash_at: None,
            foreign_log: LogThrottle::new(LOG_EVERY),
            malformed_log: LogThrottle::new(LOG_EVERY),
            clash_log: LogThrottle::new(LOG_EVERY),
        }
    }

    /// The number this process writes on its presence record.
    pub(super) fn own_writer(&self) -> u64 {
        self.own_writer
    }

    /// This instance's presence record as read back, `writer` the process
    /// that wrote it: another one than this means two instances share
    /// `instance_id`, and their counts (and the connection mismatch they
    /// show) say nothing. Noted, counted, logged at most once a minute.
    pub(super) fn own_record_read(&mut self, writer: Option<u64>, instance_id: &str) {
        if writer.is_none_or(|writer| writer == self.own_writer) {
            return;
        }
        self.id_clash_at = Some(Instant::now());
        self.metrics.record_instance_id_clash();
        if let Some(unlogged) = self.clash_log.due() {
            tracing::error!(
                instance_id,
                unlogged,
                "another process runs with this instance's id and writes its presence record: \
                 give each instance its own --instance-id"
            );
        }
    }

    pub(super) fn id_clash_at(&self) -> Option<Instant> {
        self.id_clash_at
    }

    /// The store identity this instance's messages carry.
    pub(super) fn own_store(&self) -> Option<i64> {
        self.own_store
    }

    /// Whether a message saying `store` is this deployment's; when it is
    /// not, notes it as `instance_id`'s.
    pub(super) fn admit(&mut self, store: Option<i64>, instance_id: &str) -> bool {
        let ours = match (store, self.own_store) {
            (Some(theirs), Some(own)) => theirs == own,
            _ => true,
        };
        if !ours {
            self.note(instance_id);
        }
        ours
    }

    fn note(&mut self, instance_id: &str) {
        self.metrics.record_foreign_message();
        let ignored = self.sighting.as_ref().map_or(0, |s| s.ignored) + 1;
        self.sighting = Some(ForeignSighting {
            instance_id: instance_id.to_owned(),
            ignored,
            at: Instant::now(),
        });
        if let Some(unlogged) = self.foreign_log.due() {
            tracing::warn!(
                instance_id,
                ignored,
                unlogged,
                "ignoring another deployment's messages on this cluster's Redis channels: it \
                 stores in another database; give each deployment its own --cluster-name"
            );
        }
    }

    /// A message that does not parse: logged at most once a minute, with
    /// how many were not.
    pub(super) fn malformed(&mut self, channel: &'static str, error: &serde_json::Error) {
        if let Some(unlogged) = self.malformed_log.due() {
            tracing::warn!(channel, unlogged, error.message = %error, "ignoring a malformed message on the bus");
        }
    }

    pub(super) fn sighting(&self) -> Option<ForeignSighting> {
        self.sighting.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_another_database_is_refused_and_noted_one_that_does_not_say_is_ours() {
        let metrics = || Metrics::new("unit", None);
        let mut strangers = Strangers::new(Some(7), metrics());
        assert!(strangers.admit(Some(7), "a"));
        assert!(strangers.admit(None, "old-version"));
        assert!(strangers.sighting().is_none());
        assert!(!strangers.admit(Some(8), "staging-1"));
        assert!(!strangers.admit(Some(8), "staging-2"));
        let seen = strangers.sighting().expect("noted");
        assert_eq!((seen.instance_id.as_str(), seen.ignored), ("staging-2", 2));

        let mut older = Strangers::new(None, metrics());
        assert!(
            older.admit(Some(8), "b"),
            "an instance without an identity cannot tell"
        );
    }
}
