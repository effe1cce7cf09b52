//! What the store's own operations say about its health, for `/health`.
//!
//! A `SELECT 1` answers while the disk is full, while a trigger or a
//! constraint refuses every insert, and while the `events` table is locked:
//! the broker then refuses every publish and still looks healthy. So every
//! operation reports its outcome here, writes and reads apart (reads keep
//! working while writes fail), and the operations in flight are listed, so
//! one stuck past the store timeout shows while it is stuck. A later
//! success of the same kind clears a failure.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{FailureKind, Operation, StoreError};

impl Operation {
    fn class(self) -> Option<Class> {
        match self {
            Self::InsertBatch | Self::Prune | Self::InsertTask | Self::WriteProbe => {
                Some(Class::Write)
            }
            Self::EventsAfter
            | Self::LatestId
            | Self::PrunedThrough
            | Self::Task
            | Self::SilentTasks
            | Self::ChatTask
            | Self::MessageTasks
            | Self::ReadProbe => Some(Class::Read),
            // The ping is reported by `/health` itself; it touches no table,
            // so its success must not clear a failing read.
            Self::Ping => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Write,
    Read,
}

/// What an operation's success says about the failures of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Success {
    /// It did what failed: the failure is over.
    Clears,
    /// The write probe: the store takes a small write, which a failing
    /// write may still not fit (a nearly full disk). A warning, not a cure.
    Probed,
    /// A prune that found nothing to delete wrote nothing: on a full disk
    /// or under a trigger refusing inserts it succeeds all the same.
    ProvesNothing,
}

impl Operation {
    fn success(self) -> Success {
        match self {
            Self::WriteProbe => Success::Probed,
            Self::Prune => Success::ProvesNothing,
            _ => Success::Clears,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failure {
    at: Instant,
    operation: Operation,
    kind: FailureKind,
}

#[derive(Debug, Default, Clone, Copy)]
struct ClassState {
    last_ok: Option<Instant>,
    last_failure: Option<Failure>,
    /// The write probe's last success. It proves the store takes a write,
    /// not that the write that failed would pass now (a trigger on
    /// `events`, say): it makes a failure a warning, it does not clear it.
    last_probe_ok: Option<Instant>,
}

impl ClassState {
    fn report(&self, now: Instant) -> ClassReport {
        // Failing until an operation of the same kind succeeds after it.
        let failing = self
            .last_failure
            .filter(|failure| self.last_ok.is_none_or(|ok| ok < failure.at))
            .map(|failure| FailureReport {
                operation: failure.operation.as_str(),
                kind: failure.kind,
                ago: now.saturating_duration_since(failure.at),
                probed_ok_since: self.last_probe_ok.is_some_and(|ok| ok > failure.at)
                    && now.saturating_duration_since(failure.at) >= PROBE_TRUSTED_AFTER,
                file_damaged: false,
            });
        ClassReport {
            last_ok_ago: self.last_ok.map(|ok| now.saturating_duration_since(ok)),
            failing,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    next_token: u64,
    in_flight: HashMap<u64, (Operation, Instant)>,
    writes: ClassState,
    reads: ClassState,
    /// The first and the last failure of the latest run.
    failure_run: Option<(Instant, Instant)>,
    /// An operation that found the file damaged: its kind fails from then
    /// on, whatever succeeds, until the broker restarts on a mended file.
    damaged: Option<Failure>,
}

/// How long after a write's failure the write probe's success is taken
/// as a sign the store takes writes again. A small probe can pass where
/// real writes still fail (a full disk has room for one small row), so a
/// store refusing every publish stays an alert while publishes come at
/// least this often.
pub const PROBE_TRUSTED_AFTER: Duration = Duration::from_secs(5);

/// Failures closer than this are one outage, whatever succeeded between
/// them (during a write lock reads succeed; a flapping link alternates).
pub const FAILURE_RUN_GAP: Duration = Duration::from_secs(30);

/// See [`StoreHealth::latest_failures`].
#[derive(Debug, Clone, Copy)]
pub struct FailureRun {
    pub began_ago: Duration,
    pub last_ago: Duration,
}

/// Shared by every clone of one `EventStore`.
#[derive(Debug, Default)]
pub struct StoreHealth {
    state: Mutex<State>,
}

impl StoreHealth {
    /// Lists `operation` as in flight until the returned guard is finished
    /// or dropped (a caller that goes away mid-operation must not look like
    /// a stalled store forever).
    pub fn begin(self: &Arc<Self>, operation: Operation) -> InFlightGuard {
        let mut state = self.lock();
        let token = state.next_token;
        state.next_token = state.next_token.wrapping_add(1);
        state.in_flight.insert(token, (operation, Instant::now()));
        InFlightGuard {
            health: self.clone(),
            token,
            operation,
        }
    }

    pub fn report(&self, timeout: Duration) -> StoreHealthReport {
        let now = Instant::now();
        let state = self.lock();
        let oldest_in_flight = state
            .in_flight
            .values()
            .min_by_key(|(_, started)| *started)
            .map(|(operation, started)| InFlight {
                operation: operation.as_str(),
                elapsed: now.saturating_duration_since(*started),
            });
        let (mut writes, mut reads) = (state.writes.report(now), state.reads.report(now));
        if let Some(damage) = state.damaged {
            let class = match damage.operation.class() {
                Some(Class::Write) => &mut writes,
                _ => &mut reads,
            };
            class.failing = Some(FailureReport {
                operation: damage.operation.as_str(),
                kind: damage.kind,
                ago: now.saturating_duration_since(damage.at),
                probed_ok_since: false,
                file_damaged: true,
            });
        }
        StoreHealthReport {
            timeout,
            writes,
            reads,
            in_flight: state.in_flight.len(),
            oldest_in_flight,
        }
    }

    /// The latest run of failures (reads or writes, whatever succeeded in
    /// between): how long ago it began and how long ago its last failure
    /// was. Failures less than [`FAILURE_RUN_GAP`] apart are one run.
    pub fn latest_failures(&self) -> Option<FailureRun> {
        let state = self.lock();
        let run = state.failure_run?;
        Some(FailureRun {
            began_ago: run.0.elapsed(),
            last_ago: run.1.elapsed(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain bookkeeping: a panic elsewhere leaves nothing half-written.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// An operation in flight; see [`StoreHealth::begin`].
pub struct InFlightGuard {
    health: Arc<StoreHealth>,
    token: u64,
    operation: Operation,
}

impl InFlightGuard {
    /// Records the outcome; the operation is no longer in flight.
    pub fn finish<T>(self, result: &Result<T, StoreError>) {
        let Some(class) = self.operation.class() else {
            return;
        };
        let now = Instant::now();
        let mut state = self.health.lock();
        let outcomes = match class {
            Class::Write => &mut state.writes,
            Class::Read => &mut state.reads,
        };
        match result {
            Ok(_) => match self.operation.success() {
                Success::Clears => outcomes.last_ok = Some(now),
                Success::Probed => outcomes.last_probe_ok = Some(now),
                Success::ProvesNothing => {}
            },
            Err(error) => {
                let failure = Failure {
                    at: now,
                    operation: self.operation,
                    kind: FailureKind::of(error),
                };
                outcomes.last_failure = Some(failure);
                if error.says_file_damaged() && state.damaged.is_none() {
                    state.damaged = Some(failure);
                }
                state.failure_run = match state.failure_run {
                    Some((began, last)) if now.duration_since(last) < FAILURE_RUN_GAP => {
                        Some((began, now))
                    }
                    _ => Some((now, now)),
                };
            }
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.health.lock().in_flight.remove(&self.token);
    }
}

/// What the store's operations say, at one moment.
#[derive(Debug, Clone, Default)]
pub struct StoreHealthReport {
    /// The configured store timeout.
    pub timeout: Duration,
    pub writes: ClassReport,
    pub reads: ClassReport,
    pub in_flight: usize,
    /// The operation in flight the longest.
    pub oldest_in_flight: Option<InFlight>,
}

impl StoreHealthReport {
    /// An operation in flight for longer than the store timeout: only a
    /// commit whose outcome is still unknown can be, every other wait ends
    /// at the timeout.
    pub fn stalled(&self) -> Option<&InFlight> {
        self.oldest_in_flight
            .as_ref()
            .filter(|oldest| oldest.elapsed > self.timeout)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClassReport {
    pub last_ok_ago: Option<Duration>,
    /// The latest failure, unless an operation of the same kind succeeded
    /// after it.
    pub failing: Option<FailureReport>,
}

#[derive(Debug, Clone)]
pub struct FailureReport {
    pub operation: &'static str,
    pub kind: FailureKind,
    pub ago: Duration,
    /// The write probe succeeded after it: the store takes writes again.
    pub probed_ok_since: bool,
    /// It found the SQLite file damaged: failing until a restart, however
    /// long ago.
    pub file_damaged: bool,
}

#[derive(Debug, Clone)]
pub struct InFlight {
    pub operation: &'static str,
    pub elapsed: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Result<(), StoreError> {
        Err(StoreError::Timeout(Duration::from_secs(1)))
    }

    #[test]
    fn a_failed_write_is_failing_until_a_write_succeeds() {
        let health = Arc::new(StoreHealth::default());

        health.begin(Operation::InsertBatch).finish(&failed());
        let report = health.report(Duration::from_secs(5));
        let failing = report.writes.failing.expect("failing");
        assert_eq!(failing.operation, "insert_batch");
        assert_eq!(failing.kind, FailureKind::Timeout);
        assert!(report.reads.failing.is_none());

        // A read or a ping does not vouch for writes, nor does a prune
        // (one that deleted nothing wrote nothing), nor the write probe,
        // which only makes the failure a warning once it is old enough.
        health.begin(Operation::EventsAfter).finish(&Ok(()));
        health.begin(Operation::Ping).finish(&Ok(()));
        health.begin(Operation::Prune).finish(&Ok(()));
        health.begin(Operation::WriteProbe).finish(&Ok(()));
        let failing = health.report(Duration::from_secs(5)).writes.failing;
        assert!(
            failing.is_some_and(|f| !f.probed_ok_since),
            "a probe right after the failure proves nothing yet"
        );
        assert!(
            health
                .report(Duration::from_secs(5))
                .writes
                .failing
                .is_some()
        );

        health.begin(Operation::InsertTask).finish(&Ok(()));
        assert!(
            health
                .report(Duration::from_secs(5))
                .writes
                .failing
                .is_none()
        );
    }

    #[test]
    fn a_read_that_found_the_file_damaged_fails_whatever_succeeds_after_it() {
        let health = Arc::new(StoreHealth::default());
        let damaged: Result<(), StoreError> =
            Err(StoreError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::Unknown,
                Box::new("database disk image is malformed".to_owned()),
            )));

        health.begin(Operation::EventsAfter).finish(&damaged);
        // Pages elsewhere in the file still read and take writes.
        health.begin(Operation::ReadProbe).finish(&Ok(()));
        health.begin(Operation::EventsAfter).finish(&Ok(()));
        health.begin(Operation::InsertBatch).finish(&Ok(()));

        let report = health.report(Duration::from_secs(5));
        let failing = report.reads.failing.expect("still failing");
        assert!(failing.file_damaged);
        assert_eq!(failing.operation, "events_after");
        assert!(report.writes.failing.is_none());
    }

    #[test]
    fn an_operation_is_in_flight_until_finished_or_dropped() {
        let health = Arc::new(StoreHealth::default());
        let first = health.begin(Operation::InsertBatch);
        std::thread::sleep(Duration::from_millis(5));
        let second = health.begin(Operation::EventsAfter);

        let report = health.report(Duration::from_millis(1));
        assert_eq!(report.in_flight, 2);
        assert_eq!(report.stalled().unwrap().operation, "insert_batch");
        assert!(health.report(Duration::from_secs(60)).stalled().is_none());

        drop(first);
        second.finish(&Ok(()));
        let report = health.report(Duration::from_millis(1));
        assert_eq!(report.in_flight, 0);
        assert!(report.stalled().is_none());
    }
}
