//! The statements every group commit runs, with a fixed text, so each
//! pooled connection prepares them once and keeps them.
//!
//! - SQLite's write of a running task's row, once per task written in the
//!   commit: the text path's hottest statement. diesel never keeps an
//!   `update(..).set(..)` prepared (its SQL could differ call to call), so
//!   SQLite parsed and planned it again for every token. (PostgreSQL
//!   writes all of a commit's task rows in one statement: `pg_task_update`.)
//! - SQLite's insert of one event, run once per event of the commit. A
//!   multi-row `INSERT … VALUES` that can fail halfway (the unique
//!   idempotency key) makes SQLite copy every page it touches into a
//!   statement journal first, to undo just that statement: two fifths of
//!   the insert's time, measured. One row per statement needs none.
//!   (PostgreSQL inserts the batch in one statement: `pg_insert`.)

use diesel::{
    OptionalExtension, QueryResult, RunQueryDsl,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    sql_types::{BigInt, Double, Nullable, Text},
    sqlite::{Sqlite, SqliteConnection},
};

use super::rows::{EventRow, TaskRow};

/// The condition that a task's row is unfinished, which a text or progress
/// write needs of it (a finish another instance wrote wins).
const UNFINISHED: &str = " AND status IN ('pending', 'running')";

/// `UPDATE tasks SET … WHERE task_id = ? AND status IN ('pending',
/// 'running')`: the row of `.0`, written only while the task is unfinished
/// in the store (a write of a task's progress or text never overwrites an
/// end another instance wrote meanwhile). Executes to the rows updated, 0
/// or 1.
///
/// With an expected version, only a row whose `updated_at_ms` is still the
/// one its writer last wrote or read is updated: a row another instance
/// rewrote meanwhile is not overwritten from a stale memory.
pub struct UpdateRunningTask<'a>(pub &'a TaskRow, pub Option<i64>);

impl QueryId for UpdateRunningTask<'_> {
    type QueryId = UpdateRunningTask<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Conn> RunQueryDsl<Conn> for UpdateRunningTask<'_> {}

impl QueryFragment<Sqlite> for UpdateRunningTask<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let row = self.0;
        out.push_sql("UPDATE tasks SET status = ");
        out.push_bind_param::<Text, _>(&row.status)?;
        out.push_sql(", progress = ");
        out.push_bind_param::<Double, _>(&row.progress)?;
        out.push_sql(", stage = ");
        out.push_bind_param::<Nullable<Text>, _>(&row.stage)?;
        out.push_sql(", message = ");
        out.push_bind_param::<Nullable<Text>, _>(&row.message)?;
        out.push_sql(", result = ");
        out.push_bind_param::<Nullable<Text>, _>(&row.result)?;
        out.push_sql(", error = ");
        out.push_bind_param::<Nullable<Text>, _>(&row.error)?;
        out.push_sql(", project_id = ");
        out.push_bind_param::<Nullable<Text>, _>(&row.project_id)?;
        out.push_sql(", created_at_ms = ");
        out.push_bind_param::<BigInt, _>(&row.created_at_ms)?;
        out.push_sql(", updated_at_ms = ");
        out.push_bind_param::<BigInt, _>(&row.updated_at_ms)?;
        out.push_sql(", task_type = ");
        out.push_bind_param::<Nullable<Text>, _>(&row.task_type)?;
        out.push_sql(", first_token_at_ms = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&row.first_token_at_ms)?;
        out.push_sql(", last_token_at_ms = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&row.last_token_at_ms)?;
        out.push_sql(", chat_id = ");
        out.push_bind_param::<Nullable<Text>, _>(&row.chat_id)?;
        out.push_sql(", last_seq = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&row.last_seq)?;
        out.push_sql(" WHERE task_id = ");
        out.push_bind_param::<Text, _>(&row.task_id)?;
        // One statement text whether or not a version is expected: it is
        // prepared once.
        out.push_sql(" AND updated_at_ms = COALESCE(");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.1)?;
        out.push_sql(", updated_at_ms)");
        out.push_sql(UNFINISHED);
        Ok(())
    }
}

/// `INSERT INTO events (…) VALUES (…)` of one row. Its id is not returned:
/// `RETURNING` makes SQLite run the insert into an ephemeral table and read
/// it back. The writer knows it anyway (see [`EventsSequence`]).
pub struct InsertEventRow<'a>(pub &'a EventRow);

impl QueryId for InsertEventRow<'_> {
    type QueryId = InsertEventRow<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Conn> RunQueryDsl<Conn> for InsertEventRow<'_> {}

impl QueryFragment<Sqlite> for InsertEventRow<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let row = self.0;
        out.push_sql(
            "INSERT INTO events (event_type, data, project_id, user_id, task_id, \
             idempotency_key, trace_context, created_at_ms, seq) VALUES (",
        );
        out.push_bind_param::<Text, _>(&row.event_type)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&row.data)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.project_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.user_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.task_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.idempotency_key)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.trace_context)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&row.created_at_ms)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, _>(&row.seq)?;
        out.push_sql(")");
        Ok(())
    }
}

/// `SELECT count(*) FROM tasks WHERE task_id = ? AND status IN ('pending',
/// 'running')`: whether task `.0` is unfinished in the store, 0 or 1; the
/// read a text write makes instead of writing the row (see
/// `actors::live_tasks`).
pub struct TaskUnfinished<'a>(pub &'a str);

impl QueryId for TaskUnfinished<'_> {
    type QueryId = TaskUnfinished<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for TaskUnfinished<'_> {
    type SqlType = BigInt;
}

impl<Conn> RunQueryDsl<Conn> for TaskUnfinished<'_> {}

impl QueryFragment<Sqlite> for TaskUnfinished<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("SELECT count(*) FROM tasks WHERE task_id = ");
        out.push_bind_param::<Text, _>(self.0)?;
        out.push_sql(UNFINISHED);
        Ok(())
    }
}

/// Which of `checks` are finished (or gone) in the store: a read under the
/// write lock, as final as the conditional UPDATE's and writing no page.
pub fn finished_of(c: &mut SqliteConnection, checks: &[String]) -> QueryResult<Vec<String>> {
    let mut finished = Vec::new();
    for task_id in checks {
        if TaskUnfinished(task_id).get_result::<i64>(c)? == 0 {
            finished.push(task_id.clone());
        }
    }
    Ok(finished)
}

/// The last id `AUTOINCREMENT` handed out for `events` (no row before the
/// first insert). Under the write lock the next inserts get the ids after
/// it, one by one: an AUTOINCREMENT id is the larger of this and the
/// table's largest id, plus one, and the table's largest id never exceeds
/// it.
pub struct EventsSequence;

impl QueryId for EventsSequence {
    type QueryId = EventsSequence;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for EventsSequence {
    type SqlType = BigInt;
}

impl<Conn> RunQueryDsl<Conn> for EventsSequence {}

impl EventsSequence {
    /// The last id handed out to an event (0 before the first).
    pub fn read(c: &mut SqliteConnection) -> QueryResult<i64> {
        Ok(Self.get_result::<i64>(c).optional()?.unwrap_or(0))
    }
}

impl QueryFragment<Sqlite> for EventsSequence {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("SELECT seq FROM sqlite_sequence WHERE name = 'events'");
        Ok(())
    }
}
