//! The event store: the only module that speaks SQL.
//!
//! [`EventStore`] is one async API over the backends (embedded SQLite by
//! default, PostgreSQL in production). It returns domain types, never rows.
//! Callers are the Persister (the single writer), replay and history.

mod batch_plan;
mod bounded_run;
mod checkpointer;
mod cursor;
mod deadline;
mod error;
mod health;
mod migrations;
mod operation;
mod periodic;
mod pg_database_share;
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
mod store_identity;

use std::{sync::Arc, time::Duration};

use futures_util::FutureExt;
use secrecy::ExposeSecret;

use crate::{
    config::DatabaseUrl,
    domain::{ChatId, EventId, Task, TaskId},
    telemetry::Metrics,
};

pub use batch_plan::{CommittedBatch, InsertOutcome};
pub use cursor::{EventCursor, EventPage};
pub use deadline::Deadline;
pub use error::StoreError;
pub use health::{
    ClassReport, FailureReport, FailureRun, InFlight, StoreHealth, StoreHealthReport,
};
pub use migrations::run_migrations;
pub use operation::{FailureKind, Operation};
pub use pg_database_share::watch as watch_postgres_share;
pub use queries::{ChatTasks, EarlierTasks};
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
    /// The database's identity; see [`EventStore::identity`].
    identity: i64,
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
        let deadline = Deadline::after(timeout);
        let (backend, identity) = match database {
            DatabaseUrl::Sqlite { path } => {
                let store = sqlite::SqliteStore::open(path, timeout, metrics.clone())?;
                let identity = store.identity(path, &deadline).await?;
                (Backend::Sqlite(store), identity)
            }
            DatabaseUrl::Postgres { url } => {
                let store = postgres::PostgresStore::open(url.expose_secret(), timeout)?;
                let identity = store.identity(&deadline).await?;
                (Backend::Postgres(store), identity)
            }
        };
        metrics.declare_store_errors(
            &Operation::ALL.map(Operation::as_str),
            &FailureKind::ALL.map(FailureKind::as_str),
        );
        Ok(Self {
            backend,
            identity,
            timeout,
            health: Arc::default(),
            metrics,
        })
    }

    /// Which database (or SQLite file) this is, as every instance sharing
    /// it knows it: a random number the first one drew.
    pub fn identity(&self) -> i64 {
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

    /// Stores a batch in one transaction and returns one outcome per event,
    /// in order. Ids are assigned in commit order. Past `deadline` the batch
    /// is not stored (`Timeout`), unless its commit had already begun: then
    /// this waits for the commit's outcome, up to [`bounded_run::COMMIT_WAIT_LIMIT`]
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

    /// The tasks that wrote the earlier parts of a continued message,
    /// oldest first (see [`EarlierTasks`]).
    pub async fn message_tasks(&self, earlier: EarlierTasks) -> Result<Vec<Task>, StoreError> {
        bounded!(
            self,
            Operation::MessageTasks,
            self.deadline(),
            |store, d| { store.message_tasks(earlier, &d) }
        )
    }

    fn deadline(&self) -> Deadline {
        Deadline::after(self.timeout)
    }
}
