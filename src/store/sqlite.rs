//! The embedded SQLite backend: a bundled SQLite file in WAL mode, reached
//! through diesel-async's `SyncConnectionWrapper` over a deadpool pool.
//!
//! Each operation is one closure of sync diesel run on a blocking thread
//! (`spawn_blocking`): SQLite batch inserts with RETURNING only compile with
//! sync diesel, and a blocking task is never cancelled half-way, which the
//! wrapper's own query futures do not tolerate on actix's runtime.
//!
//! The store timeout reaches SQLite as the operation's `busy_timeout` (the
//! wait for another writer's lock, the only wait SQLite has) and the pool
//! wait; writes check their [`Deadline`] right before COMMIT and roll back
//! when the caller has given up.

use std::{path::Path, sync::Arc, time::Duration};

use diesel::{
    OptionalExtension, connection::SimpleConnection as _, prelude::*, sqlite::SqliteConnection,
};
use diesel_async::pooled_connection::deadpool::Pool;

use super::{
    ChatTasks, CommittedBatch, Deadline, EarlierTasks, EventPage, InsertOutcome, StoreError,
    batch_plan::BatchPlan,
    checkpointer::Checkpointer,
    prepared::{EventsSequence, InsertEventRow, UpdateRunningTask, finished_of},
    queries,
    rows::{EventRow, EventRows, SeqCheck, StoredEventRow, TaskRow},
    schema::{events, tasks},
    seq_checks::{self, OtherWriters},
    sqlite_file_watch::FileWatch,
    sqlite_marks, sqlite_retention,
    sqlite_settings::{Connection, connection_pool},
    sqlite_task_checks::TaskChecks,
    sqlite_task_index::{self, TaskIndexer},
    store_identity,
};
use crate::{
    domain::{EventId, Task},
    telemetry::Metrics,
};

#[derive(Clone)]
pub struct SqliteStore {
    pool: Pool<Connection>,
    /// Refuses writes once the file at the path is not the one opened.
    file: Arc<FileWatch>,
    checkpointer: Arc<Checkpointer>,
    task_index: Arc<TaskIndexer>,
    task_checks: Arc<TaskChecks>,
    other_writers: Arc<OtherWriters>,
}

impl SqliteStore {
    pub fn open(path: &Path, timeout: Duration, metrics: Metrics) -> Result<Self, StoreError> {
        let pool = connection_pool(path, timeout)?;
        let task_index = Arc::new(TaskIndexer::new(metrics.clone()));
        let checkpointer = Arc::new(Checkpointer::start(path, metrics)?);
        Ok(Self {
            pool,
            file: Arc::new(FileWatch::new(path)),
            checkpointer,
            task_index,
            task_checks: Arc::default(),
            other_writers: Arc::default(),
        })
    }

    /// Runs `task` on a pooled connection's blocking thread, within
    /// `deadline`: the pool wait and SQLite's busy wait get what is left of
    /// it, and nothing runs once the caller has given up.
    async fn with_connection<R: Send + 'static>(
        &self,
        deadline: &Deadline,
        task: impl FnOnce(&mut SqliteConnection, &Deadline) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let mut connection = self
            .pool
            .timeout_get(&deadline.pool_timeouts(false))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let deadline = deadline.clone();
        connection
            .spawn_blocking(move |c| {
                if deadline.is_abandoned() {
                    return Ok(Err(StoreError::Timeout(deadline.budget())));
                }
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}",
                    deadline.remaining_ms()
                ))?;
                Ok(task(c, &deadline))
            })
            .await?
    }

    /// A write in an IMMEDIATE transaction that commits only if the caller
    /// still waits for it (see [`Deadline::begin_commit`]).
    async fn write<R: Send + 'static>(
        &self,
        deadline: &Deadline,
        task: impl FnOnce(&mut SqliteConnection) -> QueryResult<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let checkpointer = Arc::clone(&self.checkpointer);
        let file = Arc::clone(&self.file);
        self.with_connection(deadline, move |c, deadline| {
            file.check()?;
            let written = c.immediate_transaction::<_, StoreError, _>(|c| {
                let written = task(c)?;
                deadline.begin_commit()?;
                Ok(written)
            })?;
            checkpointer.committed(c);
            Ok(written)
        })
        .await
    }

    async fn read<R: Send + 'static>(
        &self,
        deadline: &Deadline,
        task: impl FnOnce(&mut SqliteConnection) -> QueryResult<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.with_connection(deadline, move |c, _| Ok(task(c)?))
            .await
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
        let task_index = (self.task_index.claim_pass()).then(|| Arc::clone(&self.task_index));
        let task_checks = Arc::clone(&self.task_checks);
        let other_writers = Arc::clone(&self.other_writers);
        let (committed, sequence) = self
            .write(deadline, move |c| {
                // Under the write lock: nothing can commit in between.
                let previous_id = EventsSequence::read(c)?;
                let checks = task_checks.to_run(previous_id, checks);
                let others_seen = other_writers.seen_by(previous_id);
                let mut stale_tasks = seq_checks::outdated_sqlite(c, &seq_checks, others_seen)?;
                tasks.retain(|(task, _)| !stale_tasks.contains(&task.task_id));
                let mut written = Vec::with_capacity(tasks.len());
                for (task, version) in &tasks {
                    let stored = UpdateRunningTask(task, *version).execute(c)? == 1;
                    if !stored {
                        stale_tasks.push(task.task_id.clone());
                    }
                    written.push((task.task_id.as_str(), stored && task.is_unfinished()));
                }
                let finished = finished_of(c, &checks)?;
                task_checks.ran(checks, &finished, written);
                stale_tasks.extend(finished);
                let outcomes = insert_batch(c, rows, &stale_tasks, dedupe_since_ms, previous_id)?;
                // AUTOINCREMENT leaves the sequence at the largest id inserted.
                let sequence = (outcomes.iter().filter_map(InsertOutcome::inserted).max())
                    .unwrap_or(previous_id);
                if let Some(task_index) = &task_index {
                    task_index.pass(c, sequence)?;
                }
                let committed = CommittedBatch {
                    outcomes,
                    previous_id: EventId(previous_id),
                    stale_tasks,
                };
                Ok((committed, sequence))
            })
            .await?;
        self.task_checks.committed(sequence);
        self.other_writers.committed(sequence);
        Ok(committed)
    }

    pub async fn probe_write(&self, deadline: &Deadline) -> Result<(), StoreError> {
        self.write(deadline, |c| {
            sqlite_marks::raise(c, sqlite_marks::WRITE_PROBE, crate::domain::now_ms())
        })
        .await
    }

    /// The file's identity (`store_identity`), drawn once, and again for
    /// a copy of the file (another device or inode).
    pub async fn identity(&self, path: &Path, deadline: &Deadline) -> Result<i64, StoreError> {
        let place = store_identity::file_place(path);
        let here = store_identity::place_mark(&place);
        let (identity, redrawn) = self
            .write(deadline, move |c| sqlite_marks::claim_identity(c, here))
            .await?;
        if redrawn {
            store_identity::log_redrawn(&place);
        }
        Ok(identity)
    }

    pub async fn latest_id(&self, deadline: &Deadline) -> Result<EventId, StoreError> {
        self.read(deadline, latest_id).await
    }

    pub async fn events_after(
        &self,
        page: EventPage,
        deadline: &Deadline,
    ) -> Result<EventRows, StoreError> {
        let rows = self
            .read(deadline, move |c| match page.task_id.clone() {
                Some(task) => sqlite_task_index::task_events_after(c, &task, page),
                None => queries::events_after!(page).load::<StoredEventRow>(c),
            })
            .await?;
        Ok(rows.into())
    }

    pub async fn pruned_through(&self, deadline: &Deadline) -> Result<EventId, StoreError> {
        let value = self
            .read(deadline, |c| {
                sqlite_marks::read(c, sqlite_marks::PRUNED_THROUGH)
            })
            .await?;
        Ok(EventId(value))
    }

    pub async fn prune_batch(
        &self,
        cutoff_ms: i64,
        batch: i64,
        deadline: &Deadline,
    ) -> Result<usize, StoreError> {
        self.write(deadline, move |c| {
            sqlite_retention::prune_batch(c, cutoff_ms, batch)
        })
        .await
    }

    pub async fn insert_task(&self, row: TaskRow, deadline: &Deadline) -> Result<bool, StoreError> {
        self.write(deadline, move |c| {
            diesel::insert_into(tasks::table)
                .values(&row)
                .on_conflict_do_nothing()
                .execute(c)
                .map(|inserted| inserted == 1)
        })
        .await
    }

    pub async fn task(&self, id: String, deadline: &Deadline) -> Result<Option<Task>, StoreError> {
        let row = self
            .read(deadline, move |c| {
                tasks::table
                    .find(id)
                    .select(TaskRow::as_select())
                    .first(c)
                    .optional()
            })
            .await?;
        Ok(row.and_then(TaskRow::into_domain))
    }

    pub async fn latest_text_seq(
        &self,
        task_id: String,
        deadline: &Deadline,
    ) -> Result<Option<i64>, StoreError> {
        let seq = self
            .read(deadline, move |c| {
                sqlite_task_index::latest_text_seq(c, task_id)
            })
            .await?;
        Ok(seq)
    }

    pub async fn silent_tasks(
        &self,
        updated_before_ms: i64,
        task_type: Option<String>,
        limit: i64,
        deadline: &Deadline,
    ) -> Result<Vec<Task>, StoreError> {
        let rows = self
            .read(deadline, move |c| {
                queries::silent_tasks!(updated_before_ms, task_type, limit).load(c)
            })
            .await?;
        Ok(rows.into_iter().filter_map(TaskRow::into_domain).collect())
    }

    pub async fn chat_task(
        &self,
        chat_id: String,
        which: ChatTasks,
        deadline: &Deadline,
    ) -> Result<Option<Task>, StoreError> {
        let row = self
            .read(deadline, move |c| {
                queries::chat_task!(chat_id, which).first(c).optional()
            })
            .await?;
        Ok(row.and_then(TaskRow::into_domain))
    }

    pub async fn message_tasks(
        &self,
        earlier: EarlierTasks,
        deadline: &Deadline,
    ) -> Result<Vec<Task>, StoreError> {
        let rows = self
            .read(deadline, move |c| queries::message_tasks!(earlier).load(c))
            .await?;
        Ok(rows.into_iter().filter_map(TaskRow::into_domain).collect())
    }

    pub async fn ping(&self, deadline: &Deadline) -> Result<(), StoreError> {
        self.read(deadline, |c| {
            diesel::sql_query("SELECT 1").execute(c).map(drop)
        })
        .await
    }
}

/// The last id committed: the newest row's, or, once retention has removed
/// every row up to it, the newest pruned one's (as PostgreSQL's
/// `pg_marks::latest_id`). An emptied table's `max(id)` goes back to 0: a
/// restarted instance would then admit streams at id 0 and tell a client
/// resuming from there that events were lost. One read transaction, so a
/// prune committing meanwhile is seen wholly or not at all.
fn latest_id(c: &mut SqliteConnection) -> QueryResult<EventId> {
    diesel::Connection::transaction(c, |c| {
        // An aggregate is one row, so no `first()` (`LIMIT ?`).
        let newest_row = events::table
            .select(diesel::dsl::max(events::id))
            .get_result::<Option<i64>>(c)?
            .unwrap_or(0);
        let pruned_through = sqlite_marks::read(c, sqlite_marks::PRUNED_THROUGH)?;
        Ok(EventId(newest_row.max(pruned_through)))
    })
}

fn insert_batch(
    c: &mut SqliteConnection,
    rows: Vec<EventRow>,
    stale_tasks: &[String],
    dedupe_since_ms: i64,
    last_id: i64,
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
        for row in plan.fresh() {
            InsertEventRow(row).execute(c)?;
        }
        let inserted = plan.fresh().len() as i64;
        // The ids are known, not guessed: checked against what SQLite
        // recorded; any other answer rolls the batch back.
        if EventsSequence::read(c)? != last_id + inserted {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        (last_id + 1..=last_id + inserted).collect()
    };
    plan.finish(ids)
        .ok_or(diesel::result::Error::RollbackTransaction)
}

#[cfg(test)]
pub(super) mod tests {
    use diesel::{Connection, dsl::sql, sql_types::Bool};
    use diesel_migrations::MigrationHarness;

    use super::*;

    /// A fresh in-memory database with every migration applied.
    pub(in crate::store) fn migrated() -> SqliteConnection {
        let mut c = SqliteConnection::establish(":memory:").expect("an in-memory database");
        c.run_pending_migrations(super::super::migrations::SQLITE_MIGRATIONS)
            .expect("the migrations apply");
        c
    }

    /// The id of the newest event row (a test's last insert).
    pub(in crate::store) fn newest_id(c: &mut SqliteConnection) -> i64 {
        events::table
            .select(diesel::dsl::max(events::id))
            .first::<Option<i64>>(c)
            .expect("readable")
            .expect("one event")
    }

    fn rows(count: usize) -> Vec<EventRow> {
        (0..count)
            .map(|n| EventRow {
                event_type: "commit".into(),
                data: format!("{{\"n\":{n}}}"),
                project_id: None,
                user_id: None,
                task_id: None,
                idempotency_key: None,
                trace_context: None,
                created_at_ms: 1,
                seq: None,
            })
            .collect()
    }

    /// Commits `count` events as the Persister does; answers the last id
    /// before them and the ids the batch answered.
    fn commit(c: &mut SqliteConnection, count: usize) -> QueryResult<(i64, Vec<i64>)> {
        c.immediate_transaction(|c| {
            let last = EventsSequence::read(c)?;
            let outcomes = insert_batch(c, rows(count), &[], 0, last)?;
            let ids = outcomes
                .into_iter()
                .map(|o| o.id().expect("inserted").0)
                .collect();
            Ok((last, ids))
        })
    }

    fn stored_ids(c: &mut SqliteConnection) -> Vec<i64> {
        events::table
            .select(events::id)
            .order(events::id)
            .load(c)
            .expect("readable")
    }

    #[test]
    fn a_batch_answers_the_ids_its_rows_were_stored_under_also_after_retention_emptied_the_table() {
        let mut c = migrated();
        assert_eq!(commit(&mut c, 3).expect("stored"), (0, vec![1, 2, 3]));
        assert_eq!(stored_ids(&mut c), vec![1, 2, 3]);
        assert_eq!(
            sqlite_retention::prune_batch(&mut c, i64::MAX, 100).expect("pruned"),
            3
        );
        // Ids are never reused: the next batch follows the last one handed
        // out, not the (now empty) table's largest.
        assert_eq!(commit(&mut c, 2).expect("stored"), (3, vec![4, 5]));
        assert_eq!(stored_ids(&mut c), vec![4, 5]);
    }

    #[test]
    fn a_checked_task_counts_as_finished_unless_it_is_pending_or_running() {
        let mut c = migrated();
        diesel::sql_query(
            "INSERT INTO tasks (task_id, status, progress, created_at_ms, updated_at_ms) VALUES \
             ('queued', 'pending', 0, 1, 1), ('writing', 'running', 0, 1, 1), \
             ('stopped', 'cancelled', 0, 1, 1), ('done', 'completed', 100, 1, 1)",
        )
        .execute(&mut c)
        .expect("tasks inserted");
        let checks = ["queued", "writing", "stopped", "done", "unknown"].map(String::from);
        assert_eq!(
            finished_of(&mut c, &checks).expect("readable"),
            ["stopped", "done", "unknown"]
        );
    }

    #[test]
    fn a_batch_whose_ids_are_not_the_ones_expected_is_rolled_back() {
        let mut c = migrated();
        commit(&mut c, 2).expect("stored");
        let wrong = c.immediate_transaction(|c| insert_batch(c, rows(2), &[], 0, 7));
        assert!(
            wrong.is_err(),
            "ids 8 and 9 were answered for rows stored as 3 and 4"
        );
        assert_eq!(stored_ids(&mut c), vec![1, 2]);
    }

    /// Without the query planner stability guarantee SQLite re-prepares a
    /// statement with a bound `LIMIT` every time it runs (`.cargo/config.toml`).
    #[test]
    fn the_bundled_sqlite_keeps_plans_whatever_the_bound_values() {
        let mut c = SqliteConnection::establish(":memory:").expect("an in-memory database");
        let qpsg = diesel::select(sql::<Bool>("sqlite_compileoption_used('ENABLE_QPSG')"))
            .get_result::<bool>(&mut c)
            .expect("compile options are readable");
        assert!(qpsg, "SQLite was built without SQLITE_ENABLE_QPSG");
    }
}
