//! The PostgreSQL backend: diesel-async's `AsyncPgConnection` (pure Rust
//! tokio-postgres, no libpq) over a deadpool pool.
//!
//! Commit order: every insert transaction first takes one transaction-scoped
//! advisory lock, so batches from all instances commit one after another and
//! a sequence id handed out earlier is always committed earlier. Ids are
//! therefore visible in increasing order, which is what makes a client's
//! `Last-Event-ID` a safe resume point whichever instance it reconnects to.

use std::time::Duration;

use deadpool::Runtime;
use diesel::{OptionalExtension, prelude::*};
use diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl,
    pooled_connection::{AsyncDieselConnectionManager, deadpool::Pool},
};

use super::{
    CommittedBatch, EventPage, InsertOutcome, StoreError,
    batch_plan::BatchPlan,
    rows::{EventRow, StoredEventRow, TaskRow},
    schema::{broker_state, events, tasks},
};
use crate::domain::{EventId, StoredEvent, Task, TaskId};

const PRUNED_THROUGH_KEY: &str = "pruned_through_id";
/// The advisory lock that serializes event commits across instances ("SSEB").
const COMMIT_ORDER_LOCK: i64 = 0x5353_4542;
const POOL_SIZE: usize = 8;
/// Fail fast when PostgreSQL is unreachable: publishers get a 503 in
/// seconds, not a hung request.
const POOL_WAIT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool<AsyncPgConnection>,
}

impl PostgresStore {
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        Ok(Self { pool })
    }

    async fn connection(
        &self,
    ) -> Result<
        deadpool::managed::Object<AsyncDieselConnectionManager<AsyncPgConnection>>,
        StoreError,
    > {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    pub async fn insert_batch(
        &self,
        rows: Vec<EventRow>,
        dedupe_since_ms: i64,
    ) -> Result<CommittedBatch, StoreError> {
        let mut connection = self.connection().await?;
        let batch = connection
            .transaction(async |c| {
                diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                    .bind::<diesel::sql_types::BigInt, _>(COMMIT_ORDER_LOCK)
                    .execute(c)
                    .await?;
                // Under the lock: the last id committed before this batch.
                let previous_id = latest_id(c).await?;
                let outcomes = insert_batch(c, rows, dedupe_since_ms).await?;
                Ok::<_, diesel::result::Error>(CommittedBatch {
                    outcomes,
                    previous_id,
                })
            })
            .await?;
        Ok(batch)
    }

    pub async fn latest_id(&self) -> Result<EventId, StoreError> {
        let mut connection = self.connection().await?;
        Ok(latest_id(&mut connection).await?)
    }

    pub async fn events_after(&self, page: EventPage) -> Result<Vec<StoredEvent>, StoreError> {
        let mut connection = self.connection().await?;
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
        let rows = query.load::<StoredEventRow>(&mut connection).await?;
        Ok(rows
            .into_iter()
            .filter_map(StoredEventRow::into_domain)
            .collect())
    }

    pub async fn pruned_through(&self) -> Result<EventId, StoreError> {
        let mut connection = self.connection().await?;
        let value = broker_state::table
            .find(PRUNED_THROUGH_KEY)
            .select(broker_state::value)
            .first::<i64>(&mut connection)
            .await
            .optional()?;
        Ok(EventId(value.unwrap_or(0)))
    }

    /// Deletes in small id-ordered batches, each its own short transaction,
    /// so publishers never wait behind a long delete.
    pub async fn prune(&self, cutoff_ms: i64, batch: i64) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let mut connection = self.connection().await?;
            let deleted = connection
                .transaction(async |c| {
                    let ids: Vec<i64> = events::table
                        .filter(events::created_at_ms.lt(cutoff_ms))
                        .order(events::id.asc())
                        .limit(batch)
                        .select(events::id)
                        .load(c)
                        .await?;
                    let Some(&highest) = ids.last() else {
                        return Ok::<usize, diesel::result::Error>(0);
                    };
                    let deleted = diesel::delete(events::table.filter(events::id.eq_any(&ids)))
                        .execute(c)
                        .await?;
                    diesel::insert_into(broker_state::table)
                        .values((
                            broker_state::key.eq(PRUNED_THROUGH_KEY),
                            broker_state::value.eq(highest),
                        ))
                        .on_conflict(broker_state::key)
                        .do_update()
                        .set(
                            broker_state::value.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                                "GREATEST(broker_state.value, excluded.value)",
                            )),
                        )
                        .execute(c)
                        .await?;
                    Ok(deleted)
                })
                .await?;
            total += deleted as u64;
            if deleted < batch as usize {
                return Ok(total);
            }
        }
    }

    pub async fn insert_task(&self, task: &Task) -> Result<bool, StoreError> {
        let mut connection = self.connection().await?;
        let inserted = diesel::insert_into(tasks::table)
            .values(&TaskRow::from(task))
            .on_conflict_do_nothing()
            .execute(&mut connection)
            .await?;
        Ok(inserted == 1)
    }

    pub async fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        let mut connection = self.connection().await?;
        let row = tasks::table
            .find(id.to_string())
            .select(TaskRow::as_select())
            .first(&mut connection)
            .await
            .optional()?;
        Ok(row.and_then(TaskRow::into_domain))
    }

    pub async fn update_task(
        &self,
        task: &Task,
        expected_updated_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection().await?;
        let row = TaskRow::from(task);
        let updated = diesel::update(
            tasks::table
                .find(row.task_id.clone())
                .filter(tasks::updated_at_ms.eq(expected_updated_at_ms)),
        )
        .set(&row)
        .execute(&mut connection)
        .await?;
        Ok(updated == 1)
    }

    pub async fn silent_tasks(
        &self,
        updated_before_ms: i64,
        task_type: Option<String>,
        limit: i64,
    ) -> Result<Vec<Task>, StoreError> {
        let mut connection = self.connection().await?;
        let mut query = tasks::table
            .filter(tasks::status.eq_any(["pending", "running"]))
            .filter(tasks::updated_at_ms.lt(updated_before_ms))
            .limit(limit)
            .select(TaskRow::as_select())
            .into_boxed();
        if let Some(task_type) = task_type {
            query = query.filter(tasks::task_type.eq(task_type));
        }
        let rows = query.load(&mut connection).await?;
        Ok(rows.into_iter().filter_map(TaskRow::into_domain).collect())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection().await?;
        diesel::sql_query("SELECT 1")
            .execute(&mut connection)
            .await?;
        Ok(())
    }
}

async fn latest_id(c: &mut AsyncPgConnection) -> QueryResult<EventId> {
    events::table
        .select(diesel::dsl::max(events::id))
        .first::<Option<i64>>(c)
        .await
        .map(|id| EventId(id.unwrap_or(0)))
}

async fn insert_batch(
    c: &mut AsyncPgConnection,
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
                .await
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
                        .execute(c)
                        .await?;
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
            .get_results(c)
            .await?
    };
    plan.finish(ids)
        .ok_or(diesel::result::Error::RollbackTransaction)
}
