//! PostgreSQL's insert of a group commit's events: one statement with a
//! fixed text, whatever the batch size.
//!
//! A multi-row `INSERT … VALUES` has eight parameters per row, so its text
//! changes with every batch size: diesel prepares it anew each commit (a
//! round trip), and PostgreSQL parses and plans up to 4,096 parameters
//! each time. Here the batch travels as eight arrays and `UNNEST` turns
//! them back into rows: the connection prepares the statement once, and a
//! commit's insert is one round trip.

use diesel::{
    QueryResult,
    pg::Pg,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    sql_types::{Array, BigInt, Nullable, Text},
};

use super::rows::EventRow;

/// The rows of `INSERT INTO events … RETURNING id`, column by column.
pub struct InsertEventRows<'a> {
    event_type: Vec<&'a str>,
    data: Vec<&'a str>,
    project_id: Vec<Option<&'a str>>,
    user_id: Vec<Option<&'a str>>,
    task_id: Vec<Option<&'a str>>,
    idempotency_key: Vec<Option<&'a str>>,
    trace_context: Vec<Option<&'a str>>,
    created_at_ms: Vec<i64>,
    seq: Vec<Option<i64>>,
}

impl<'a> InsertEventRows<'a> {
    pub fn new(rows: &'a [EventRow]) -> Self {
        Self {
            event_type: rows.iter().map(|r| r.event_type.as_str()).collect(),
            data: rows.iter().map(|r| r.data.as_str()).collect(),
            project_id: rows.iter().map(|r| r.project_id.as_deref()).collect(),
            user_id: rows.iter().map(|r| r.user_id.as_deref()).collect(),
            task_id: rows.iter().map(|r| r.task_id.as_deref()).collect(),
            idempotency_key: rows.iter().map(|r| r.idempotency_key.as_deref()).collect(),
            trace_context: rows.iter().map(|r| r.trace_context.as_deref()).collect(),
            created_at_ms: rows.iter().map(|r| r.created_at_ms).collect(),
            seq: rows.iter().map(|r| r.seq).collect(),
        }
    }
}

impl QueryId for InsertEventRows<'_> {
    type QueryId = InsertEventRows<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for InsertEventRows<'_> {
    type SqlType = BigInt;
}

impl QueryFragment<Pg> for InsertEventRows<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // Ids come from the sequence in the order the rows are produced,
        // which `ORDER BY n` fixes to the arrays' order; the caller sorts
        // what RETURNING answers, whose order SQL leaves open.
        out.push_sql(
            "INSERT INTO events (event_type, data, project_id, user_id, task_id, \
             idempotency_key, trace_context, created_at_ms, seq) \
             SELECT event_type, data, project_id, user_id, task_id, idempotency_key, \
             trace_context, created_at_ms, seq FROM UNNEST(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.event_type)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(&self.data)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.project_id)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.user_id)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.task_id)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.idempotency_key)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.trace_context)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<BigInt>, _>(&self.created_at_ms)?;
        out.push_sql("::int8[], ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.seq)?;
        out.push_sql(
            "::int8[]) WITH ORDINALITY AS e(event_type, data, project_id, user_id, task_id, \
             idempotency_key, trace_context, created_at_ms, seq, n) ORDER BY n RETURNING id",
        );
        Ok(())
    }
}
