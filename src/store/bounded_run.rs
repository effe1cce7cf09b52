//! An operation's run within its deadline: the work in a task of its own,
//! waited for until the deadline (or, for a commit already sent, its
//! outcome), its failure counted, logged and reported to the store's
//! health.

use futures_util::future::BoxFuture;

use super::{
    Deadline, EventStore, FailureKind, Operation, StoreError,
    deadline::{joined_result, report_late_outcome},
};

impl EventStore {
    /// Waits for `work` (spawned, so never dropped half-way) until
    /// `deadline`. Past it: `Timeout` if the work had not begun to commit
    /// (it will not commit now); if it had, its outcome, waited for up to
    /// one more store timeout, or with `wait_for_commit` up to
    /// [`COMMIT_WAIT_LIMIT`] store timeouts (the Persister, which must know
    /// whether a batch is stored before it moves on).
    pub(super) async fn run<T: Send + 'static>(
        &self,
        operation: Operation,
        deadline: Deadline,
        work: BoxFuture<'static, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.run_with(operation, deadline, false, work).await
    }

    pub(super) async fn run_with<T: Send + 'static>(
        &self,
        operation: Operation,
        deadline: Deadline,
        wait_for_commit: bool,
        work: BoxFuture<'static, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let in_flight = self.health.begin(operation);
        let mut worker = tokio::spawn(work);
        let until = tokio::time::Instant::from_std(deadline.instant());
        let result = match tokio::time::timeout_at(until, &mut worker).await {
            Ok(joined) => joined_result(joined),
            Err(_) if deadline.abandon() => Err(StoreError::Timeout(deadline.budget())),
            // The commit was sent before the deadline: its outcome decides.
            Err(_) => {
                let limit = if wait_for_commit {
                    self.timeout * COMMIT_WAIT_LIMIT
                } else {
                    self.timeout
                };
                match tokio::time::timeout(limit, &mut worker).await {
                    Ok(joined) => joined_result(joined),
                    Err(_) => {
                        report_late_outcome(operation, worker);
                        Err(StoreError::CommitUnconfirmed(self.timeout))
                    }
                }
            }
        };
        // A failure once the budget is spent is the timeout's doing (the
        // database gave up on the lock or busy wait we bounded by it).
        let result = result.map_err(|error| match error {
            StoreError::Query(_) | StoreError::Unavailable(_) if deadline.is_past() => {
                tracing::debug!(operation = operation.as_str(), error.message = %error, "store operation failed at its deadline");
                StoreError::Timeout(deadline.budget())
            }
            other => other,
        });
        if let Err(error) = &result {
            let kind = FailureKind::of(error);
            // A caller that waits for the commit (the Persister) counts it
            // unconfirmed itself, when it answers its publishers so, one
            // timeout in: counted here too, one batch would count twice.
            if !(wait_for_commit && kind == FailureKind::Unconfirmed) {
                self.metrics
                    .record_store_error(operation.as_str(), kind.as_str());
            }
            let budget = match error {
                StoreError::Timeout(budget) | StoreError::CommitUnconfirmed(budget) => *budget,
                _ => self.timeout,
            };
            // The health checks' timeouts repeat every second while the
            // store hangs; the health sampler logs where that begins and ends.
            if kind != FailureKind::Error && operation.checks_health() {
                tracing::debug!(
                    operation = operation.as_str(),
                    timeout_ms = budget.as_millis() as u64,
                    outcome = kind.as_str(),
                    "store operation timed out"
                );
            } else if kind != FailureKind::Error {
                tracing::warn!(
                    operation = operation.as_str(),
                    timeout_ms = budget.as_millis() as u64,
                    outcome = kind.as_str(),
                    "store operation timed out"
                );
            }
        }
        in_flight.finish(&result);
        result
    }
}

/// How many store timeouts the Persister waits for a commit it has sent
/// before it gives up and moves on. A COMMIT the database cancels ends
/// within one; one that hangs longer has lost its connection (a partition
/// mid-commit), and waiting for TCP to notice would stop publishing for
/// minutes. Moving on keeps ids in order: the lost transaction holds the
/// commit-order lock (SQLite: the write lock) until it ends, so nothing
/// commits before it.
pub(super) const COMMIT_WAIT_LIMIT: u32 = 10;
