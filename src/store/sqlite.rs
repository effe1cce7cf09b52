//! The embedded SQLite backend: a bundled SQLite file in WAL mode, reached
//! through diesel-async's `SyncConnectionWrapper` over a deadpool pool.
//!
//! Each operation is one closure of sync diesel run on a blocking thread
//! (`spawn_blocking`): SQLite batch inserts with RETURNING only compile with
//! sync diesel, and a blocking task is never cancelled half-way, which the
//! wrapper's own query futures do not tolerate on actix's runtime.

use std::{path::Path, time::Duration};

use deadpool::Runtime;
use diesel::{OptionalExtension, prelude::*, sqlite::SqliteConnection};
use diesel_async::{
    AsyncConnection, SimpleAsyncConnection,
    pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, deadpool::Pool},
    sync_connection_wrapper::SyncConnectionWrapper,
};
use futures_util::FutureExt;

use super::{
    CommittedBatch, EventPage, InsertOutcome, StoreError,
    batch_plan::BatchPlan,
    rows::{EventRow, StoredEventRow, TaskRow},
    schema::{broker_state, events, tasks},
};
use crate::domain::{EventId, StoredEvent, Task, TaskId};

type Connection = SyncConnectionWrapper<SqliteConnection>;

const PRUNED_THROUGH_KEY: &str = "pruned_through_id";
/// Readers run beside the single writer thanks to WAL.
const POOL_SIZE: usize = 4;
const POOL_WAIT: Duration = Duration::from_secs(5);
/// Per-connection settings. `busy_timeout` comes first so the others wait
/// for a writer instead of failing. WAL itself is a property of the file,
/// set once by the migrations. NORMAL synchronous is durable across process
/// crashes in WAL mode (only an OS crash can lose the last commits) and
/// avoids an fsync per commit.
const CONNECTION_PRAGMAS: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

#[derive(Clone)]
pub struct SqliteStore {
    pool: Pool<Connection>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut config = ManagerConfig::<Connection>::default();
        config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            async move {
                let mut connection = Connection::establish(&url).await?;
                connection
                    .batch_execute(CONNECTION_PRAGMAS)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(connection)
            }
            .boxed()
        });
        let manager = AsyncDieselConnectionManager::<Connection>::new_with_config(
            path.to_string_lossy(),
            config,
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        Ok(Self { pool })
    }

    async fn with_connection<R: Send + 'static>(
        &self,
        task: impl FnOnce(&mut SqliteConnection) -> QueryResult<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let mut connection = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(connection.spawn_blocking(task).await?)
    }

    pub async fn insert_batch(
        &self,
        rows: Vec<EventRow>,
        dedupe_since_ms: i64,
    ) -> Result<CommittedBatch, StoreError> {
        self.with_connection(move |c| {
            c.immediate_transaction(|c| {
                // Under the write lock: nothing can commit in between.
                let previous_id = latest_id(c)?;
                let outcomes = insert_batch(c, rows, dedupe_since_ms)?;
                Ok(CommittedBatch {
                    outcomes,
                    previous_id,
                })
            })
        })
        .await
    }

    pub async fn latest_id(&self) -> Result<EventId, StoreError> {
        self.with_connection(latest_id).await
    }

    pub async fn events_after(&self, page: EventPage) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self
            .with_connection(move |c| {
                let mut query = events::table
                    .filter(events::id.gt(page.after.0))
                    .order(events::id.asc())
                    .limit(page.limit)
                    .select(StoredEventRow::as_select())
                    .into_boxed();
                if let Some(types) = page.event_types {
                    query = query.filter(events::event_type.eq_any(types));
                }
                if let Some(project) = page.project_id {
                    query = query.filter(events::project_id.eq(project));
                }
                if let Some(task) = page.task_id {
                    query = query.filter(events::task_id.eq(task));
                }
                query.load::<StoredEventRow>(c)
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(StoredEventRow::into_domain)
            .collect())
    }

    pub async fn pruned_through(&self) -> Result<EventId, StoreError> {
        let value = self
            .with_connection(|c| {
                broker_state::table
                    .find(PRUNED_THROUGH_KEY)
                    .select(broker_state::value)
                    .first::<i64>(c)
                    .optional()
            })
            .await?;
        Ok(EventId(value.unwrap_or(0)))
    }

    pub async fn prune(&self, cutoff_ms: i64, batch: i64) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let deleted = self
                .with_connection(move |c| {
                    c.immediate_transaction(|c| prune_batch(c, cutoff_ms, batch))
                })
                .await?;
            total += deleted as u64;
            if deleted < batch as usize {
                return Ok(total);
            }
        }
    }

    pub async fn insert_task(&self, task: &Task) -> Result<bool, StoreError> {
        let row = TaskRow::from(task);
        self.with_connection(move |c| {
            diesel::insert_into(tasks::table)
                .values(&row)
                .on_conflict_do_nothing()
                .execute(c)
                .map(|inserted| inserted == 1)
        })
        .await
    }

    pub async fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        let id = id.to_string();
        let row = self
            .with_connection(move |c| {
                tasks::table
                    .find(id)
                    .select(TaskRow::as_select())
                    .first(c)
                    .optional()
            })
            .await?;
        Ok(row.and_then(TaskRow::into_domain))
    }

    pub async fn update_task(
        &self,
        task: &Task,
        expected_updated_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let row = TaskRow::from(task);
        self.with_connection(move |c| {
            diesel::update(
                tasks::table
                    .find(row.task_id.clone())
                    .filter(tasks::updated_at_ms.eq(expected_updated_at_ms)),
            )
            .set(&row)
            .execute(c)
            .map(|updated| updated == 1)
        })
        .await
    }

    pub async fn silent_tasks(
        &self,
        updated_before_ms: i64,
        task_type: Option<String>,
        limit: i64,
    ) -> Result<Vec<Task>, StoreError> {
        let rows = self
            .with_connection(move |c| {
                let mut query = tasks::table
                    .filter(tasks::status.eq_any(["pending", "running"]))
                    .filter(tasks::updated_at_ms.lt(updated_before_ms))
                    .limit(limit)
                    .select(TaskRow::as_select())
                    .into_boxed();
                if let Some(task_type) = task_type {
                    query = query.filter(tasks::task_type.eq(task_type));
                }
                query.load(c)
            })
            .await?;
        Ok(rows.into_iter().filter_map(TaskRow::into_domain).collect())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with_connection(|c| diesel::sql_query("SELECT 1").execute(c).map(drop))
            .await
    }
}

fn latest_id(c: &mut SqliteConnection) -> QueryResult<EventId> {
    events::table
        .select(diesel::dsl::max(events::id))
        .first::<Option<i64>>(c)
        .map(|id| EventId(id.unwrap_or(0)))
}

fn insert_batch(
    c: &mut SqliteConnection,
    rows: Vec<EventRow>,
    dedupe_since_ms: i64,
) -> QueryResult<Vec<InsertOutcome>> {
    let mut plan = BatchPlan::new(rows.len());
    for (position, row) in rows.into_iter().enumerate() {
        if let Some(key) = &row.idempotency_key {
            if plan.repeats_in_batch(position, key) {
                continue;
            }
            let existing = events::table
                .filter(events::idempotency_key.eq(key))
                .select((events::id, events::created_at_ms))
                .first::<(i64, i64)>(c)
                .optional()?;
            match existing {
                Some((id, at)) if at >= dedupe_since_ms => {
                    plan.duplicate_of_stored(position, EventId(id));
                    continue;
                }
                // Outside the window: the key is free again.
                Some((id, _)) => {
                    diesel::update(events::table.find(id))
                        .set(events::idempotency_key.eq(None::<String>))
                        .execute(c)?;
                }
                None => {}
            }
        }
        plan.insert(position, row);
    }
    let ids = if plan.fresh().is_empty() {
        Vec::new()
    } else {
        diesel::insert_into(events::table)
            .values(plan.fresh())
            .returning(events::id)
            .get_results(c)?
    };
    plan.finish(ids)
        .ok_or(diesel::result::Error::RollbackTransaction)
}

fn prune_batch(c: &mut SqliteConnection, cutoff_ms: i64, batch: i64) -> QueryResult<usize> {
    let ids: Vec<i64> = events::table
        .filter(events::created_at_ms.lt(cutoff_ms))
        .order(events::id.asc())
        .limit(batch)
        .select(events::id)
        .load(c)?;
    let Some(&highest) = ids.last() else {
        return Ok(0);
    };
    let deleted = diesel::delete(events::table.filter(events::id.eq_any(&ids))).execute(c)?;
    diesel::insert_into(broker_state::table)
        .values((
            broker_state::key.eq(PRUNED_THROUGH_KEY),
            broker_state::value.eq(highest),
        ))
        .on_conflict(broker_state::key)
        .do_update()
        .set(
            broker_state::value.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "MAX(value, excluded.value)",
            )),
        )
        .execute(c)?;
    Ok(deleted)
}
