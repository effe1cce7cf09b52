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
//! The check runs only once another writer has been seen adding events
//! ([`OtherWriters`]: another instance on PostgreSQL, another process on
//! the same file on SQLite): a lone instance never pays it,
//! one of a cluster pays one statement per batch that holds numbered
//! deltas.

use std::{
    collections::HashMap,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
};

use diesel::{
    QueryResult, QueryableByName, SqliteConnection, sql_query,
    sql_types::{Array, BigInt, Nullable, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{rows::SeqCheck, sqlite_task_index};

/// Whether anyone but this store has added events since its first batch:
/// the newest id a batch finds under the commit lock is not the one this
/// store's last batch left. Once seen, for good (a task held in memory may
/// have been written elsewhere at any time since).
#[derive(Default)]
pub(super) struct OtherWriters {
    /// The newest id as this store's last batch left it.
    left_at: Mutex<Option<i64>>,
    seen: AtomicBool,
}

impl OtherWriters {
    /// At a batch's start, under the commit lock, with the newest id.
    pub(super) fn seen_by(&self, newest: i64) -> bool {
        let left_at = *self.left_at.lock().unwrap_or_else(PoisonError::into_inner);
        if left_at.is_some_and(|left_at| left_at != newest) && !self.seen.swap(true, Relaxed) {
            tracing::info!("another instance writes to this store: numbered deltas are checked");
        }
        AtomicBool::load(&self.seen, Relaxed)
    }

    /// After a batch committed, leaving the newest id at `newest`.
    pub(super) fn committed(&self, newest: i64) {
        *self.left_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(newest);
    }
}

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
    others_seen: bool,
) -> QueryResult<Vec<String>> {
    if checks.is_empty() || !others_seen {
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

/// [`outdated_pg`] for SQLite, under the write lock (the other writer can
/// only be another process on the same file).
pub(super) fn outdated_sqlite(
    c: &mut SqliteConnection,
    checks: &[SeqCheck],
    others_seen: bool,
) -> QueryResult<Vec<String>> {
    if checks.is_empty() || !others_seen {
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
    let newest: HashMap<String, Option<i64>> =
        newest.into_iter().map(|n| (n.task_id, n.seq)).collect();
    let outdated: Vec<String> = checks
        .iter()
        .filter(|check| check.is_outdated_by(newest.get(&check.task_id).copied().flatten()))
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

    #[test]
    fn other_writers_are_seen_once_the_newest_id_is_not_where_this_store_left_it() {
        let writers = OtherWriters::default();
        assert!(!writers.seen_by(40), "the first batch cannot tell");
        writers.committed(45);
        assert!(!writers.seen_by(45), "only this store wrote since");
        writers.committed(50);
        assert!(writers.seen_by(52), "someone else added 51 and 52");
        writers.committed(53);
        assert!(writers.seen_by(53), "for good");
    }
}
