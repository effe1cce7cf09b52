//! The event store: the only module that speaks SQL.
//!
//! [`EventStore`] is one async API over the backends (embedded SQLite by
//! default, PostgreSQL in production). It returns domain types, never rows.
//! Callers are the Persister (the single writer), replay and history.

mod batch_plan;
mod migrations;
mod postgres;
mod rows;
mod schema;
mod sqlite;

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::{
    config::DatabaseUrl,
    domain::{EventId, NewEvent, StoredEvent, Subscription, Task, TaskId, TypeFilter},
};

pub use migrations::run_migrations;

/// How long a publish's `idempotency_key` is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Why the store could not answer. Messages never reach clients: the HTTP
/// edge maps every variant to a generic 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not open the event store: {0}")]
    Open(String),
    #[error("could not apply migrations: {0}")]
    Migration(String),
    #[error("no database connection available: {0}")]
    Unavailable(String),
    #[error("query failed")]
    Query(#[from] diesel::result::Error),
}

/// What happened to one event of an insert batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored now under this id: deliver it.
    Inserted(EventId),
    /// Its `idempotency_key` was seen within the window: answer the first
    /// id, deliver nothing.
    Duplicate(EventId),
}

impl InsertOutcome {
    pub fn id(self) -> EventId {
        match self {
            Self::Inserted(id) | Self::Duplicate(id) => id,
        }
    }
}

/// A committed batch: one outcome per event, and the id of the last event
/// committed before it. Batches commit one at a time, so `previous_id`
/// chains them: a receiver that has not routed `previous_id` yet knows it
/// missed a batch and reads it from the store.
#[derive(Debug, Clone)]
pub struct CommittedBatch {
    pub outcomes: Vec<InsertOutcome>,
    pub previous_id: EventId,
}

/// A page of stored events: id greater than `after`, oldest first, narrowed
/// by what SQL can filter cheaply. Visibility is still applied by the caller
/// through `Subscription::matches`.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub after: EventId,
    pub event_types: Option<Vec<String>>,
    pub project_id: Option<String>,
    pub task_id: Option<String>,
    pub limit: i64,
}

impl EventPage {
    pub fn for_subscription(subscription: &Subscription, after: EventId, limit: i64) -> Self {
        Self {
            after,
            event_types: match &subscription.event_types {
                TypeFilter::All => None,
                TypeFilter::Only(types) => Some(types.iter().map(ToString::to_string).collect()),
            },
            project_id: subscription.project_id.as_ref().map(ToString::to_string),
            task_id: subscription.task_id.as_ref().map(ToString::to_string),
            limit,
        }
    }
}

/// The event store, whichever backend holds it. Cheap to clone.
#[derive(Clone)]
pub enum EventStore {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.backend())
    }
}

impl EventStore {
    /// Opens the store and applies pending migrations.
    pub async fn open(database: &DatabaseUrl) -> Result<Self, StoreError> {
        run_migrations(database).await?;
        match database {
            DatabaseUrl::Sqlite { path } => Ok(Self::Sqlite(sqlite::SqliteStore::open(path)?)),
            DatabaseUrl::Postgres { url } => Ok(Self::Postgres(postgres::PostgresStore::open(
                url.expose_secret(),
            )?)),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgresql",
        }
    }

    /// Stores a batch in one transaction and returns one outcome per event,
    /// in order. Ids are assigned in commit order.
    #[tracing::instrument(name = "store.insert_batch", skip_all, fields(db.system = self.backend(), batch_size = events.len()))]
    pub async fn insert_batch(&self, events: &[NewEvent]) -> Result<CommittedBatch, StoreError> {
        let rows = events.iter().map(rows::EventRow::from).collect();
        let dedupe_since_ms = crate::domain::now_ms() - IDEMPOTENCY_WINDOW.as_millis() as i64;
        match self {
            Self::Sqlite(store) => store.insert_batch(rows, dedupe_since_ms).await,
            Self::Postgres(store) => store.insert_batch(rows, dedupe_since_ms).await,
        }
    }

    /// One page of stored events after `page.after`, oldest first.
    #[tracing::instrument(name = "store.events_after", skip_all, fields(db.system = self.backend(), after = page.after.0))]
    pub async fn events_after(&self, page: EventPage) -> Result<Vec<StoredEvent>, StoreError> {
        match self {
            Self::Sqlite(store) => store.events_after(page).await,
            Self::Postgres(store) => store.events_after(page).await,
        }
    }

    /// The newest stored id (0 when empty).
    pub async fn latest_id(&self) -> Result<EventId, StoreError> {
        match self {
            Self::Sqlite(store) => store.latest_id().await,
            Self::Postgres(store) => store.latest_id().await,
        }
    }

    /// The highest id removed by retention; resuming below it has a gap.
    pub async fn pruned_through(&self) -> Result<EventId, StoreError> {
        match self {
            Self::Sqlite(store) => store.pruned_through().await,
            Self::Postgres(store) => store.pruned_through().await,
        }
    }

    /// Deletes events published before `cutoff_ms`, `batch` rows per
    /// transaction so writers are never locked out for long.
    #[tracing::instrument(name = "store.prune", skip_all, fields(db.system = self.backend()))]
    pub async fn prune(&self, cutoff_ms: i64, batch: i64) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(store) => store.prune(cutoff_ms, batch).await,
            Self::Postgres(store) => store.prune(cutoff_ms, batch).await,
        }
    }

    /// Creates a task; `false` when the id is taken.
    pub async fn insert_task(&self, task: &Task) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(store) => store.insert_task(task).await,
            Self::Postgres(store) => store.insert_task(task).await,
        }
    }

    pub async fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        match self {
            Self::Sqlite(store) => store.task(id).await,
            Self::Postgres(store) => store.task(id).await,
        }
    }

    /// Saves `task` if nobody changed it since `expected_updated_at_ms`
    /// (optimistic concurrency); `false` when someone did.
    pub async fn update_task(
        &self,
        task: &Task,
        expected_updated_at_ms: i64,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(store) => store.update_task(task, expected_updated_at_ms).await,
            Self::Postgres(store) => store.update_task(task, expected_updated_at_ms).await,
        }
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
        match self {
            Self::Sqlite(store) => {
                store
                    .silent_tasks(updated_before_ms, task_type, limit)
                    .await
            }
            Self::Postgres(store) => {
                store
                    .silent_tasks(updated_before_ms, task_type, limit)
                    .await
            }
        }
    }

    /// A cheap round trip, for `/health`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.ping().await,
            Self::Postgres(store) => store.ping().await,
        }
    }
}
