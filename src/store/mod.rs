//! The event store: the only module that speaks SQL.
//!
//! [`EventStore`] is one async API over the backends (embedded SQLite by
//! default, PostgreSQL in production). It returns domain types, never rows.
//! Callers are the Persister (the single writer), replay and history.

mod batch_plan;
mod checkpointer;
mod cursor;
mod deadline;
mod error;
mod health;
mod migrations;
mod periodic;
mod pg_insert;
mod pg_marks;
mod pg_probes;
mod pg_task_update;
mod postgres;
mod prepared;
mod queries;
mod rows;
mod schema;
mod seq_checks;
mod sqlite;
mod sqlite_file_watch;
mod sqlite_lock;
mod sqlite_marks;
mod sqlite_retention;
mod sqlite_settings;
mod sqlite_task_checks;
mod sqlite_task_index;

use std::{sync::Arc, time::Duration};

use futures_util::{FutureExt, future::BoxFuture};
use secrecy::ExposeSecret;

use crate::{
    config::DatabaseUrl,
    domain::{ChatId, EventId, Task, TaskId},
    telemetry::Metrics,
};

pub use batch_plan::{CommittedBatch, InsertOutcome};
pub use cursor::{EventCursor, EventPage};
pub use deadline::Deadline;
use deadline::{joined_result, report_late_outcome};
pub use error::StoreError;
pub use health::{
    ClassReport, FailureKind, FailureReport, FailureRun, InFlight, Operation, StoreHealth,
    StoreHealthReport,
};
pub use migrations::run_migrations;
pub use queries::ChatTasks;
pub use rows::{BatchRows, EventRows};
pub use sqlite_lock::InstanceLock;

/// How long a publish's `idempotency_key` is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Since when (ms since the epoch) a key published is still remembered.
fn keys_remembered_since_ms() -> i64 {
    crate::domain::now_ms() - IDEMPOTENCY_WINDOW.as_millis() as i64
}

/// The event store, whichever backend holds it. Cheap to clone.
///
/// Every operation is bounded by the store timeout: it runs in a task of
/// its own, and the caller waits for that task until its [`Deadline`]. A
/// task is never dropped half-way (a dropped `SyncConnectionWrapper` query
/// future panics on actix's runtime, and a dropped PostgreSQL transaction
/// leaves its connection in an unknown state): past the deadline the
/// caller stops waiting and the task, told by the deadline not to commit,
/// ends by itself within the bounds the backend gave the database.
#[derive(Clone)]
pub struct EventStore {
    backend: Backend,
    /// A shared (PostgreSQL) database's identity; see [`EventStore::identity`].
    identity: Option<i64>,
    timeout: Duration,
    health: Arc<StoreHealth>,
    metrics: Metrics,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.backend())
    }
}

/// Runs `$call` on whichever backend `$store` is, in a task bounded by
/// `$deadline` (see [`EventStore::run`]); `$backend` and `$d` (a clone of
/// the deadline) are bound for the call.
macro_rules! bounded {
    ($store:expr, $operation:expr, $deadline:expr, |$backend:ident, $d:ident| $call:expr) => {{
        let deadline: Deadline = $deadline;
        let $d = deadline.clone();
        let work = match $store.backend.clone() {
            Backend::Sqlite($backend) => async move { $call.await }.boxed(),
            Backend::Postgres($backend) => async move { $call.await }.boxed(),
        };
        $store.run($operation, deadline, work).await
    }};
}

mod probes;

impl EventStore {
    /// Opens the store and applies pending migrations. Every operation is
    /// bounded by `timeout`.
    pub async fn open(
        database: &DatabaseUrl,
        timeout: Duration,
        metrics: Metrics,
    ) -> Result<Self, StoreError> {
        run_migrations(database).await?;
        let backend = match database {
            DatabaseUrl::Sqlite { path } => {
                Backend::Sqlite(sqlite::SqliteStore::open(path, timeout, metrics.clone())?)
            }
            DatabaseUrl::Postgres { url } => {
                Backend::Postgres(postgres::PostgresStore::open(url.expose_secret(), timeout)?)
            }
        };
        let identity = match &backend {
            Backend::Postgres(store) => Some(store.identity(&Deadline::after(timeout)).await?),
            Backend::Sqlite(_) => None,
        };
        metrics.declare_store_errors(
            &health::Operation::ALL.map(health::Operation::as_str),
            &health::FailureKind::ALL.map(health::FailureKind::as_str),
        );
        Ok(Self {
            backend,
            identity,
            timeout,
            health: Arc::default(),
            metrics,
        })
    }

    /// Which database this is, as every instance sharing it knows it (a
    /// random number the first one drew); `None` for SQLite, a file of one
    /// instance's own.
    pub fn identity(&self) -> Option<i64> {
        self.identity
    }

    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgresql",
        }
    }

    /// The bound of every operation (`--store-timeout-ms`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// What the operations of this store said lately, for `/health`.
    pub fn health(&self) -> StoreHealthReport {
        self.health.report(self.timeout)
    }

    /// The latest run of failed operations (reads or writes), whatever
    /// succeeded since; `None` if none ever failed.
    pub fn latest_failures(&self) -> Option<FailureRun> {
        self.health.latest_failures()
    }

    /// Waits for `work` (spawned, so never dropped half-way) until
    /// `deadline`. Past it: `Timeout` if the work had not begun to commit
    /// (it will not commit now); if it had, its outcome, waited for up to
    /// one more store timeout, or with `wait_for_commit` up to
    /// [`COMMIT_WAIT_LIMIT`] store timeouts (the Persister, which must know
    /// whether a batch is stored before it moves on).
    async fn run<T: Send + 'static>(
        &self,
        operation: Operation,
        deadline: Deadline,
        work: BoxFuture<'static, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.run_with(operation, deadline, false, work).await
    }

    async fn run_with<T: Send + 'static>(
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
            self.metrics
                .record_store_error(operation.as_str(), kind.as_str());
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

    /// Stores a batch in one transaction and returns one outcome per event,
    /// in order. Ids are assigned in commit order. Past `deadline` the batch
    /// is not stored (`Timeout`), unless its commit had already begun: then
    /// this waits for the commit's outcome, up to [`COMMIT_WAIT_LIMIT`]
    /// store timeouts (then `CommitUnconfirmed`).
    #[tracing::instrument(name = "store.insert_batch", skip_all, fields(db.system = self.backend(), batch_size = batch.events.len()))]
    pub async fn insert_batch(
        &self,
        batch: BatchRows,
        deadline: Deadline,
    ) -> Result<CommittedBatch, StoreError> {
        let BatchRows {
            events: rows,
            tasks,
            checks,
            seq_checks,
        } = batch;
        let dedupe_since_ms = keys_remembered_since_ms();
        let d = deadline.clone();
        let work = match self.backend.clone() {
            Backend::Sqlite(store) => async move {
                store
                    .insert_batch(rows, tasks, checks, seq_checks, dedupe_since_ms, &d)
                    .await
            }
            .boxed(),
            Backend::Postgres(store) => async move {
                store
                    .insert_batch(rows, tasks, checks, seq_checks, dedupe_since_ms, &d)
                    .await
            }
            .boxed(),
        };
        self.run_with(Operation::InsertBatch, deadline, true, work)
            .await
    }

    /// One page of stored events after `page.after`, oldest first.
    #[tracing::instrument(name = "store.events_after", skip_all, fields(db.system = self.backend(), after = page.after.0))]
    pub async fn events_after(&self, page: EventPage) -> Result<EventRows, StoreError> {
        bounded!(self, Operation::EventsAfter, self.deadline(), |store, d| {
            store.events_after(page, &d)
        })
    }

    /// The newest stored id (0 when empty).
    pub async fn latest_id(&self) -> Result<EventId, StoreError> {
        bounded!(self, Operation::LatestId, self.deadline(), |store, d| store
            .latest_id(&d))
    }

    /// The highest id removed by retention; resuming below it has a gap.
    pub async fn pruned_through(&self) -> Result<EventId, StoreError> {
        bounded!(
            self,
            Operation::PrunedThrough,
            self.deadline(),
            |store, d| store.pruned_through(&d)
        )
    }

    /// The highest id the store ever gave: its newest event's, or, when
    /// retention removed the newest rows, the highest it removed. A resume
    /// point above it came from another store (wiped, restored, replaced).
    pub async fn highest_given_id(&self) -> Result<EventId, StoreError> {
        Ok(self.latest_id().await?.max(self.pruned_through().await?))
    }

    /// Deletes events published before `cutoff_ms`, `batch` rows per
    /// transaction so writers are never locked out for long; each
    /// transaction is one bounded operation.
    #[tracing::instrument(name = "store.prune", skip_all, fields(db.system = self.backend()))]
    pub async fn prune(&self, cutoff_ms: i64, batch: i64) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let deleted = bounded!(self, Operation::Prune, self.deadline(), |store, d| store
                .prune_batch(cutoff_ms, batch, &d))?;
            total += deleted as u64;
            if deleted < batch as usize {
                return Ok(total);
            }
        }
    }

    /// Creates a task; `false` when the id is taken.
    pub async fn insert_task(&self, task: &Task) -> Result<bool, StoreError> {
        let row = rows::TaskRow::from(task);
        bounded!(self, Operation::InsertTask, self.deadline(), |store, d| {
            store.insert_task(row, &d)
        })
    }

    pub async fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        let id = id.to_string();
        bounded!(self, Operation::Task, self.deadline(), |store, d| store
            .task(id, &d))
    }

    /// The task as a writer resumes it: its row, with the last producer
    /// `seq` taken from its newest `text` event when that is later (a text
    /// write does not rewrite the row each time, see `actors::live_tasks`).
    pub async fn task_for_writing(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        let Some(mut task) = self.task(id).await? else {
            return Ok(None);
        };
        let task_id = id.to_string();
        let stored = bounded!(self, Operation::Task, self.deadline(), |store, d| store
            .latest_text_seq(task_id, &d))?;
        let stored = stored.and_then(|seq| u64::try_from(seq).ok());
        task.last_seq = task.last_seq.max(stored);
        Ok(Some(task))
    }

    /// Unfinished tasks (of `task_type`, if given) with no write since
    /// `updated_before_ms`.
    pub async fn silent_tasks(
        &self,
        updated_before_ms: i64,
        task_type: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Task>, StoreError> {
        let task_type = task_type.map(str::to_owned);
        bounded!(self, Operation::SilentTasks, self.deadline(), |store, d| {
            store.silent_tasks(updated_before_ms, task_type, limit, &d)
        })
    }

    /// The newest task of `chat_id` among `which`, whatever its status.
    pub async fn chat_task(
        &self,
        chat_id: &ChatId,
        which: ChatTasks,
    ) -> Result<Option<Task>, StoreError> {
        let chat_id = chat_id.to_string();
        bounded!(self, Operation::ChatTask, self.deadline(), |store, d| {
            store.chat_task(chat_id, which, &d)
        })
    }

    fn deadline(&self) -> Deadline {
        Deadline::after(self.timeout)
    }
}

/// How many store timeouts the Persister waits for a commit it has sent
/// before it gives up and moves on. A COMMIT the database cancels ends
/// within one; one that hangs longer has lost its connection (a partition
/// mid-commit), and waiting for TCP to notice would stop publishing for
/// minutes. Moving on keeps ids in order: the lost transaction holds the
/// commit-order lock (SQLite: the write lock) until it ends, so nothing
/// commits before it.
const COMMIT_WAIT_LIMIT: u32 = 10;
