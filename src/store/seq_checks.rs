//! A producer's `seq` across instances: the store's last word on whether a
//! write of numbered deltas knew every `seq` already accepted.
//!
//! Each instance's LiveTasks remembers the last `seq` it accepted for a
//! task and ignores a delta at or below it (a retried write never doubles
//! text). Another instance writing to the same task (a producer's retry,
//! or its next request, sent elsewhere by a load balancer) accepts `seq`s
//! this one never sees, so its memory can be behind. A batch therefore
//! compares, under its commit lock, the newest `seq` stored for each task
//! written with numbered deltas with the one the writer knew; if the store
//! is ahead, nothing of that task is written in the batch and the writer
//! reloads the task and offers the deltas again.
//!
//! PostgreSQL checks every such write (one statement per batch). On
//! SQLite the only other writer is another process on the same file, so
//! the check runs only once one has been seen (`sqlite_task_checks`).

use diesel::{
    QueryResult, QueryableByName, SqliteConnection, sql_query,
    sql_types::{Array, BigInt, Nullable, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{rows::SeqCheck, sqlite_task_checks::TaskChecks, sqlite_task_index};

#[derive(QueryableByName)]
struct NewestSeq {
    #[diesel(sql_type = Text)]
    task_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    seq: Option<i64>,
}

/// The tasks of `checks` whose writer's `seq` is behind the store's
/// (PostgreSQL, inside the batch's transaction, after its commit lock).
pub(super) async fn outdated_pg(
    c: &mut AsyncPgConnection,
    checks: &[SeqCheck],
) -> QueryResult<Vec<String>> {
    if checks.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = checks.iter().map(|check| check.task_id.as_str()).collect();
    // The newest event with a seq of each task: a backward walk of
    // `events_task (task_id, id)` that stops at its first text event.
    let newest: Vec<NewestSeq> = sql_query(
        "SELECT t.task_id, (SELECT e.seq FROM events e \
           WHERE e.task_id = t.task_id AND e.seq IS NOT NULL \
           ORDER BY e.id DESC LIMIT 1) AS seq \
         FROM unnest($1::text[]) AS t(task_id)",
    )
    .bind::<Array<Text>, _>(&ids)
    .load(c)
    .await?;
    Ok(outdated(checks, newest))
}

/// [`outdated_pg`] for SQLite, under the write lock: run only once
/// another process has been seen writing to the file.
pub(super) fn outdated_sqlite(
    c: &mut SqliteConnection,
    checks: &[SeqCheck],
    task_checks: &TaskChecks,
) -> QueryResult<Vec<String>> {
    if checks.is_empty() || !task_checks.others_seen() {
        return Ok(Vec::new());
    }
    let newest = checks
        .iter()
        .map(|check| {
            sqlite_task_index::latest_text_seq(c, check.task_id.clone()).map(|seq| NewestSeq {
                task_id: check.task_id.clone(),
                seq,
            })
        })
        .collect::<QueryResult<Vec<_>>>()?;
    Ok(outdated(checks, newest))
}

fn outdated(checks: &[SeqCheck], newest: Vec<NewestSeq>) -> Vec<String> {
    let outdated: Vec<String> = checks
        .iter()
        .filter(|check| {
            let stored = newest
                .iter()
                .find(|n| n.task_id == check.task_id)
                .and_then(|n| n.seq);
            check.is_outdated_by(stored)
        })
        .map(|check| check.task_id.clone())
        .collect();
    if !outdated.is_empty() {
        tracing::info!(
            tasks = outdated.len(),
            "another instance accepted later seqs of tasks in this batch: their writes reload"
        );
    }
    outdated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_outdated_only_by_a_seq_it_did_not_know() {
        let knew = |known| SeqCheck {
            task_id: "t".into(),
            known,
        };
        assert!(!knew(None).is_outdated_by(None));
        assert!(!knew(Some(3)).is_outdated_by(None));
        assert!(!knew(Some(3)).is_outdated_by(Some(3)));
        assert!(!knew(Some(3)).is_outdated_by(Some(2)));
        assert!(knew(Some(3)).is_outdated_by(Some(4)));
        assert!(knew(None).is_outdated_by(Some(1)));
    }
}
