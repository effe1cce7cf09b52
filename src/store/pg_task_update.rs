//! PostgreSQL's write of a group commit's task rows: one statement for all
//! of them.
//!
//! A commit carries the row of every task written in it (a thousand
//! generations streaming at once put hundreds in each commit). One
//! `UPDATE` per row is one round trip per row inside the transaction, and
//! the commit, which every publisher of the batch waits for, lasts that
//! long. Here the rows travel as arrays and `UPDATE … FROM UNNEST` writes
//! them in one round trip, with the same guard as the single-row update:
//! only a task still unfinished in the store is written.

use std::collections::HashMap;

use diesel::{
    QueryResult,
    pg::Pg,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    sql_types::{Array, BigInt, Double, Nullable, Text},
};

use super::rows::TaskRow;

/// `UPDATE tasks … FROM UNNEST(…) … RETURNING task_id`: loads the ids of
/// the tasks written; a task of the batch missing from them was finished
/// in the store meanwhile.
pub struct UpdateRunningTasks<'a> {
    task_id: Vec<&'a str>,
    status: Vec<&'a str>,
    progress: Vec<f64>,
    stage: Vec<Option<&'a str>>,
    message: Vec<Option<&'a str>>,
    result: Vec<Option<&'a str>>,
    error: Vec<Option<&'a str>>,
    project_id: Vec<Option<&'a str>>,
    created_at_ms: Vec<i64>,
    updated_at_ms: Vec<i64>,
    task_type: Vec<Option<&'a str>>,
    first_token_at_ms: Vec<Option<i64>>,
    last_token_at_ms: Vec<Option<i64>>,
    chat_id: Vec<Option<&'a str>>,
    last_seq: Vec<Option<i64>>,
    /// The `updated_at_ms` each writer last wrote or read (see
    /// `prepared::UpdateRunningTask`).
    expected_version: Vec<Option<i64>>,
}

impl<'a> UpdateRunningTasks<'a> {
    /// The last row of each task wins, as it would written one by one.
    pub fn new(rows: &'a [TaskRow], versions: &[Option<i64>]) -> Self {
        let last: HashMap<&str, usize> = rows
            .iter()
            .enumerate()
            .map(|(at, row)| (row.task_id.as_str(), at))
            .collect();
        let (rows, expected_version): (Vec<&TaskRow>, Vec<Option<i64>>) = rows
            .iter()
            .enumerate()
            .filter(|(at, row)| last[row.task_id.as_str()] == *at)
            .map(|(at, row)| (row, versions.get(at).copied().flatten()))
            .unzip();
        Self {
            task_id: rows.iter().map(|r| r.task_id.as_str()).collect(),
            status: rows.iter().map(|r| r.status.as_str()).collect(),
            progress: rows.iter().map(|r| r.progress).collect(),
            stage: rows.iter().map(|r| r.stage.as_deref()).collect(),
            message: rows.iter().map(|r| r.message.as_deref()).collect(),
            result: rows.iter().map(|r| r.result.as_deref()).collect(),
            error: rows.iter().map(|r| r.error.as_deref()).collect(),
            project_id: rows.iter().map(|r| r.project_id.as_deref()).collect(),
            created_at_ms: rows.iter().map(|r| r.created_at_ms).collect(),
            updated_at_ms: rows.iter().map(|r| r.updated_at_ms).collect(),
            task_type: rows.iter().map(|r| r.task_type.as_deref()).collect(),
            first_token_at_ms: rows.iter().map(|r| r.first_token_at_ms).collect(),
            last_token_at_ms: rows.iter().map(|r| r.last_token_at_ms).collect(),
            chat_id: rows.iter().map(|r| r.chat_id.as_deref()).collect(),
            last_seq: rows.iter().map(|r| r.last_seq).collect(),
            expected_version,
        }
    }
}

impl QueryId for UpdateRunningTasks<'_> {
    type QueryId = UpdateRunningTasks<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for UpdateRunningTasks<'_> {
    type SqlType = Text;
}

impl QueryFragment<Pg> for UpdateRunningTasks<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "UPDATE tasks SET status = u.status, progress = u.progress, stage = u.stage, \
             message = u.message, result = u.result, error = u.error, \
             project_id = u.project_id, created_at_ms = u.created_at_ms, \
             updated_at_ms = u.updated_at_ms, task_type = u.task_type, \
             first_token_at_ms = u.first_token_at_ms, last_token_at_ms = u.last_token_at_ms, \
             chat_id = u.chat_id, last_seq = u.last_seq FROM UNNEST(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.task_id)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(&self.status)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Double>, _>(&self.progress)?;
        out.push_sql("::float8[], ");
        for column in [
            &self.stage,
            &self.message,
            &self.result,
            &self.error,
            &self.project_id,
        ] {
            out.push_bind_param::<Array<Nullable<Text>>, _>(column)?;
            out.push_sql("::text[], ");
        }
        out.push_bind_param::<Array<BigInt>, _>(&self.created_at_ms)?;
        out.push_sql("::int8[], ");
        out.push_bind_param::<Array<BigInt>, _>(&self.updated_at_ms)?;
        out.push_sql("::int8[], ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.task_type)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.first_token_at_ms)?;
        out.push_sql("::int8[], ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.last_token_at_ms)?;
        out.push_sql("::int8[], ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.chat_id)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.last_seq)?;
        out.push_sql("::int8[], ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.expected_version)?;
        out.push_sql(
            "::int8[]) AS u(task_id, status, progress, stage, message, result, error, \
             project_id, created_at_ms, updated_at_ms, task_type, first_token_at_ms, \
             last_token_at_ms, chat_id, last_seq, expected_version) \
             WHERE tasks.task_id = u.task_id AND tasks.status IN ('pending', 'running') \
             AND tasks.updated_at_ms = COALESCE(u.expected_version, tasks.updated_at_ms) \
             RETURNING tasks.task_id",
        );
        Ok(())
    }
}
