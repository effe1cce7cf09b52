//! The PostgreSQL backend: diesel-async's `AsyncPgConnection` (pure Rust
//! tokio-postgres, no libpq) over a deadpool pool.
//!
//! Commit order: every insert transaction first takes one transaction-scoped
//! advisory lock, so batches from all instances commit one after another and
//! a sequence id handed out earlier is always committed earlier. Ids are
//! therefore visible in increasing order, which is what makes a client's
//! `Last-Event-ID` a safe resume point whichever instance it reconnects to.
//!
//! The store timeout is enforced by PostgreSQL itself, so a transaction
//! that waits too long really aborts instead of committing after the caller
//! gave up: every session starts with `statement_timeout` and
//! `lock_timeout` at the store timeout (and, so that a stalled instance
//! cannot keep the commit-order lock, `idle_in_transaction_session_timeout`
//! too), and every write transaction narrows
//! both (`SET LOCAL`) to what is left of its [`Deadline`] and commits only
//! if the caller still waits. The pool wait is bounded by the deadline too.

use std::{collections::HashSet, sync::Arc, time::Duration};

use deadpool::Runtime;
use diesel::{OptionalExtension, prelude::*};
use diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
    pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, deadpool::Pool},
};
use futures_util::FutureExt;

use super::{
    ChatTasks, CommittedBatch, Deadline, EarlierTasks, EventPage, InsertOutcome, StoreError,
    batch_plan::BatchPlan,
    pg_insert::InsertEventRows,
    pg_marks,
    pg_task_update::UpdateRunningTasks,
    queries,
    rows::{EventRow, EventRows, SeqCheck, StoredEventRow, TaskRow},
    schema::{events, tasks},
    seq_checks::{self, OtherWriters},
};
use crate::domain::{EventId, Task};

/// The advisory lock that serializes event commits across instances ("SSEB").
pub(super) const COMMIT_ORDER_LOCK: i64 = 0x5353_4542;
const POOL_SIZE: usize = 8;

type PooledConnection = deadpool::managed::Object<AsyncDieselConnectionManager<AsyncPgConnection>>;

#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool<AsyncPgConnection>,
    other_writers: Arc<OtherWriters>,
}

impl PostgresStore {
    pub fn open(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let mut config = ManagerConfig::<AsyncPgConnection>::default();
        // A read that outlives its caller's deadline (the caller answered
        // 503 already) is cancelled by the server within one more timeout.
        // A write transaction holds the commit-order lock that every
        // instance's commits wait for: a session left idle inside one (its
        // instance stalled, or cut off from the database without a FIN)
        // is ended by the server within half a timeout (a healthy
        // transaction idles for microseconds between its statements), so
        // one instance's stall cannot stop publishing on all of them, and
        // the commits already waiting for the lock get it before their own
        // timeout.
        let session = format!(
            "SET statement_timeout = {ms}; SET lock_timeout = {ms}; \
             SET idle_in_transaction_session_timeout = {idle_ms};",
            ms = timeout.as_millis().max(1),
            idle_ms = (timeout.as_millis() / 2).max(1)
        );
        config.custom_setup = Box::new(move |url| {
            let url = url.to_owned();
            let session = session.clone();
            async move {
                let mut connection = AsyncPgConnection::establish(&url).await?;
                connection
                    .batch_execute(&session)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(connection)
            }
            .boxed()
        });
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        Ok(Self {
            pool,
            other_writers: Arc::default(),
        })
    }

    /// A pooled connection within `deadline`; nothing once the caller has
    /// given up.
    pub(super) async fn connection(
        &self,
        deadline: &Deadline,
    ) -> Result<PooledConnection, StoreError> {
        if deadline.is_abandoned() {
            return Err(StoreError::Timeout(deadline.budget()));
        }
        self.pool
            .timeout_get(&deadline.pool_timeouts(true))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    pub async fn insert_batch(
        &self,
        rows: Vec<EventRow>,
        mut tasks: Vec<(TaskRow, Option<i64>)>,
        checks: Vec<String>,
        seq_checks: Vec<SeqCheck>,
        dedupe_since_ms: i64,
        deadline: &Deadline,
    ) -> Result<CommittedBatch, StoreError> {
        let take_commit_lock = format!(" SELECT pg_advisory_xact_lock({COMMIT_ORDER_LOCK});");
        let mut connection = self.connection(deadline).await?;
        let committed = connection
            .transaction::<_, StoreError, _>(async |c| {
                bound_transaction(c, deadline, &take_commit_lock).await?;
                // Under the lock: the last id committed before this batch.
                let previous_id = pg_marks::latest_id(c).await?;
                // Before the rows: an outdated writer's row is not written.
                let others_seen = self.other_writers.seen_by(previous_id.0);
                let outdated = seq_checks::outdated_pg(c, &seq_checks, others_seen).await?;
                tasks.retain(|(task, _)| !outdated.contains(&task.task_id));
                let (tasks, versions): (Vec<TaskRow>, Vec<Option<i64>>) = tasks.into_iter().unzip();
                let mut stale_tasks = if tasks.is_empty() {
                    Vec::new()
                } else {
                    let written: HashSet<String> = UpdateRunningTasks::new(&tasks, &versions)
                        .load(c)
                        .await?
                        .into_iter()
                        .collect();
                    tasks
                        .iter()
                        .filter(|task| !written.contains(&task.task_id))
                        .map(|task| task.task_id.clone())
                        .collect()
                };
                if !checks.is_empty() {
                    // FOR SHARE: a finish another instance is writing
                    // commits before this read or after this batch, never
                    // in between.
                    let open: HashSet<String> = tasks::table
                        .filter(tasks::task_id.eq_any(&checks))
                        .filter(tasks::status.eq_any(queries::UNFINISHED_STATUSES))
                        .select(tasks::task_id)
                        .for_share()
                        .load(c)
                        .await?
                        .into_iter()
                        .collect();
                    stale_tasks.extend(checks.into_iter().filter(|t| !open.contains(t)));
                }
                stale_tasks.extend(outdated);
                let outcomes = insert_batch(c, rows, &stale_tasks, dedupe_since_ms).await?;
                deadline.begin_commit()?;
                Ok(CommittedBatch {
                    outcomes,
                    previous_id,
                    stale_tasks,
                })
            })
            .await?;
        let newest = committed
            .outcomes
            .iter()
            .filter_map(InsertOutcome::inserted)
            .max();
        (self.other_writers).committed(newest.unwrap_or(committed.previous_id.0));
        Ok(committed)
    }

    pub async fn latest_id(&self, deadline: &Deadline) -> Result<EventId, StoreError> {
        let mut connection = self.connection(deadline).await?;
        Ok(pg_marks::latest_id(&mut connection).await?)
    }

    pub async fn events_after(
        &self,
        page: EventPage,
        deadline: &Deadline,
    ) -> Result<EventRows, StoreError> {
        let mut connection = self.connection(deadline).await?;
        let rows = queries::events_after!(page)
            .load::<StoredEventRow>(&mut connection)
            .await?;
        Ok(rows.into())
    }

    /// This database's identity (`store_identity`), drawn by the first
    /// instance that asks, and again by the first in another place (a copy).
    pub async fn identity(&self, deadline: &Deadline) -> Result<i64, StoreError> {
        let mut connection = self.connection(deadline).await?;
        Ok(pg_marks::identity(&mut connection).await?)
    }

    pub async fn pruned_through(&self, deadline: &Deadline) -> Result<EventId, StoreError> {
        let mut connection = self.connection(deadline).await?;
        Ok(EventId(
            pg_marks::read(&mut connection, pg_marks::PRUNED_THROUGH).await?,
        ))
    }

    /// One id-ordered batch of the retention delete, its own short
    /// transaction, so publishers never wait behind a long delete.
    pub async fn prune_batch(
        &self,
        cutoff_ms: i64,
        batch: i64,
        deadline: &Deadline,
    ) -> Result<usize, StoreError> {
        let mut connection = self.connection(deadline).await?;
        connection
            .transaction::<_, StoreError, _>(async |c| {
                bound_transaction(c, deadline, "").await?;
                let ids: Vec<i64> = queries::prunable_event_ids!(cutoff_ms, batch)
                    .load(c)
                    .await?;
                let Some(&highest) = ids.last() else {
                    return Ok(0);
                };
                let deleted = diesel::delete(events::table.filter(events::id.eq_any(&ids)))
                    .execute(c)
                    .await?;
                pg_marks::raise(c, pg_marks::PRUNED_THROUGH, highest).await?;
                deadline.begin_commit()?;
                Ok(deleted)
            })
            .await
    }

    pub async fn insert_task(&self, row: TaskRow, deadline: &Deadline) -> Result<bool, StoreError> {
        let mut connection = self.connection(deadline).await?;
        connection
            .transaction::<_, StoreError, _>(async |c| {
                bound_transaction(c, deadline, "").await?;
                let inserted = diesel::insert_into(tasks::table)
                    .values(&row)
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await?;
                deadline.begin_commit()?;
                Ok(inserted == 1)
            })
            .await
    }

    pub async fn task(&self, id: String, deadline: &Deadline) -> Result<Option<Task>, StoreError> {
        let mut connection = self.connection(deadline).await?;
        let row = tasks::table
            .find(id)
            .select(TaskRow::as_select())
            .first(&mut connection)
            .await
            .optional()?;
        Ok(row.and_then(TaskRow::into_domain))
    }

    pub async fn latest_text_seq(
        &self,
        task_id: String,
        deadline: &Deadline,
    ) -> Result<Option<i64>, StoreError> {
        let mut connection = self.connection(deadline).await?;
        let seq = queries::latest_text_seq!(task_id)
            .first(&mut connection)
            .await
            .optional()?;
        Ok(seq.flatten())
    }

    pub async fn silent_tasks(
        &self,
        updated_before_ms: i64,
        task_type: Option<String>,
        limit: i64,
        deadline: &Deadline,
    ) -> Result<Vec<Task>, StoreError> {
        let mut connection = self.connection(deadline).await?;
        let rows = queries::silent_tasks!(updated_before_ms, task_type, limit)
            .load(&mut connection)
            .await?;
        Ok(rows.into_iter().filter_map(TaskRow::into_domain).collect())
    }

    pub async fn chat_task(
        &self,
        chat_id: String,
        which: ChatTasks,
        deadline: &Deadline,
    ) -> Result<Option<Task>, StoreError> {
        let mut connection = self.connection(deadline).await?;
        let row = queries::chat_task!(chat_id, which)
            .first(&mut connection)
            .await
            .optional()?;
        Ok(row.and_then(TaskRow::into_domain))
    }

    pub async fn message_tasks(
        &self,
        earlier: EarlierTasks,
        deadline: &Deadline,
    ) -> Result<Vec<Task>, StoreError> {
        let mut connection = self.connection(deadline).await?;
        let rows = queries::message_tasks!(earlier)
            .load(&mut connection)
            .await?;
        Ok(rows.into_iter().filter_map(TaskRow::into_domain).collect())
    }
}

/// The first statement of every write transaction: PostgreSQL itself
/// cancels whatever waits on a lock or runs past what is left of
/// `deadline`, and the transaction rolls back. `then` (a lock to take,
/// say) rides in the same round trip.
pub(super) async fn bound_transaction(
    c: &mut AsyncPgConnection,
    deadline: &Deadline,
    then: &str,
) -> Result<(), StoreError> {
    let budget = deadline.remaining_ms();
    c.batch_execute(&format!(
        "SET LOCAL statement_timeout = {budget}; SET LOCAL lock_timeout = {budget};{then}"
    ))
    .await?;
    Ok(())
}

async fn insert_batch(
    c: &mut AsyncPgConnection,
    rows: Vec<EventRow>,
    stale_tasks: &[String],
    dedupe_since_ms: i64,
) -> QueryResult<Vec<InsertOutcome>> {
    let mut plan = BatchPlan::new(rows.len());
    for (position, row) in rows.into_iter().enumerate() {
        if row
            .task_id
            .as_ref()
            .is_some_and(|t| stale_tasks.contains(t))
        {
            plan.skip(position);
            continue;
        }
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
        let mut ids: Vec<i64> = InsertEventRows::new(plan.fresh()).load(c).await?;
        ids.sort_unstable();
        ids
    };
    plan.finish(ids)
        .ok_or(diesel::result::Error::RollbackTransaction)
}
