//! [`Deadline`]: the time budget of one store operation, shared between the
//! caller that waits for it and the worker task that runs it.
//!
//! Timing out a store call must never mean "we stopped listening, but it
//! may still commit": a publisher told 503 would find its event stored and
//! delivered later. So the budget is also a one-way decision about the
//! transaction. Right before COMMIT the worker calls
//! [`Deadline::begin_commit`]; when the budget is spent the waiter calls
//! [`Deadline::abandon`]. Whichever comes first wins, atomically: an
//! abandoned transaction rolls back, and once a commit has begun the waiter
//! waits for its outcome instead of reporting a failure that may be false.
//! The backends also hand what is left of the budget to the database
//! (PostgreSQL `lock_timeout`/`statement_timeout`, SQLite `busy_timeout`)
//! and to the pool, so an abandoned worker does not linger either.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use super::{Operation, StoreError};

const RUNNING: u8 = 0;
const COMMITTING: u8 = 1;
const ABANDONED: u8 = 2;

/// The budget of one store operation and whether it may still commit.
/// Cheap to clone; clones share the decision.
#[derive(Debug, Clone)]
pub struct Deadline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    at: Instant,
    /// The configured store timeout, for messages.
    budget: Duration,
    state: AtomicU8,
}

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self::from_start(Instant::now(), budget)
    }

    /// `budget` from `start`: a publish's budget runs from the moment it was
    /// queued, so time spent waiting for an earlier commit counts.
    pub fn from_start(start: Instant, budget: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                at: start + budget,
                budget,
                state: AtomicU8::new(RUNNING),
            }),
        }
    }

    pub fn instant(&self) -> Instant {
        self.inner.at
    }

    /// The configured budget (not what is left of it).
    pub fn budget(&self) -> Duration {
        self.inner.budget
    }

    pub fn remaining(&self) -> Duration {
        self.inner.at.saturating_duration_since(Instant::now())
    }

    pub fn is_past(&self) -> bool {
        Instant::now() >= self.inner.at
    }

    /// What is left, in whole milliseconds rounded up, at least 1: the
    /// databases read 0 as "no limit" (PostgreSQL) or "fail at once"
    /// (SQLite), and neither is what a nearly spent budget means.
    pub(super) fn remaining_ms(&self) -> u64 {
        (self.remaining().as_nanos().div_ceil(1_000_000) as u64).max(1)
    }

    /// The pool waits at most what is left of the budget. SQLite passes
    /// `recycle: false`: deadpool drops a recycle that overruns, and a
    /// dropped `SyncConnectionWrapper` query future panics on actix's
    /// runtime.
    pub(super) fn pool_timeouts(&self, recycle: bool) -> deadpool::managed::Timeouts {
        let left = Some(self.remaining());
        deadpool::managed::Timeouts {
            wait: left,
            create: left,
            recycle: if recycle { left } else { None },
        }
    }

    /// Worker, right before COMMIT: `Err(Timeout)` when the waiter gave up
    /// (or the budget is spent), and the transaction must roll back; `Ok`
    /// commits, and from then on the waiter waits for the outcome.
    pub(super) fn begin_commit(&self) -> Result<(), StoreError> {
        if self.is_past() {
            self.abandon();
        }
        match self.inner.state.compare_exchange(
            RUNNING,
            COMMITTING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(()),
            Err(_) => Err(StoreError::Timeout(self.budget())),
        }
    }

    /// Waiter, when the budget is spent: `true` when the operation can no
    /// longer commit (it will roll back, or never started), `false` when
    /// its commit has already begun.
    pub(super) fn abandon(&self) -> bool {
        match self.inner.state.compare_exchange(
            RUNNING,
            ABANDONED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(state) => state == ABANDONED,
        }
    }

    /// Worker, before starting: nobody waits for this any more.
    pub(super) fn is_abandoned(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) == ABANDONED
    }
}

/// A worker task's result; a panicked or cancelled worker is an
/// unavailable store.
pub(super) fn joined_result<T>(
    joined: Result<Result<T, StoreError>, tokio::task::JoinError>,
) -> Result<T, StoreError> {
    joined.unwrap_or_else(|error| {
        Err(StoreError::Unavailable(format!(
            "the store task failed: {error}"
        )))
    })
}

/// A commit reported as unconfirmed still ends some time: say how, so an
/// operator can reconcile (the client was told it may have been stored).
pub(super) fn report_late_outcome<T: Send + 'static>(
    operation: Operation,
    worker: tokio::task::JoinHandle<Result<T, StoreError>>,
) {
    tokio::spawn(async move {
        match joined_result(worker.await) {
            Ok(_) => tracing::warn!(
                operation = operation.as_str(),
                "a store commit reported as unconfirmed did commit"
            ),
            Err(error) => tracing::warn!(
                operation = operation.as_str(),
                error.message = %error,
                "a store commit reported as unconfirmed did not commit"
            ),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_that_begins_first_is_waited_for() {
        let deadline = Deadline::after(Duration::from_secs(60));
        assert!(deadline.begin_commit().is_ok());
        assert!(!deadline.abandon(), "the commit is under way");
    }

    #[test]
    fn an_abandoned_operation_cannot_commit() {
        let deadline = Deadline::after(Duration::from_secs(60));
        assert!(deadline.abandon());
        assert!(deadline.is_abandoned());
        assert!(matches!(
            deadline.begin_commit(),
            Err(StoreError::Timeout(_))
        ));
        assert!(deadline.abandon(), "abandoning twice is still abandoned");
    }

    #[test]
    fn a_worker_past_the_deadline_abandons_by_itself() {
        let deadline = Deadline::from_start(
            Instant::now() - Duration::from_secs(2),
            Duration::from_secs(1),
        );
        assert!(deadline.is_past());
        assert!(deadline.begin_commit().is_err());
        assert!(deadline.abandon());
        assert_eq!(deadline.remaining_ms(), 1, "never 0: 0 means no limit");
    }
}
