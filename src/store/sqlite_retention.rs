//! SQLite's retention: the oldest events deleted in batches (an unfinished
//! task's spared), and the highest id deleted remembered (a resume from
//! below it is told events were lost: `replay_truncated`, unless its task's
//! events are all there).

use diesel::{prelude::*, sqlite::SqliteConnection};

use super::{
    schema::{events, tasks},
    sqlite_marks, sqlite_task_index,
};

/// Deletes up to `batch` of the oldest events created before `cutoff_ms`;
/// answers how many.
pub(super) fn prune_batch(
    c: &mut SqliteConnection,
    cutoff_ms: i64,
    batch: i64,
) -> QueryResult<usize> {
    let ids: Vec<i64> = super::queries::prunable_event_ids!(cutoff_ms, batch).load(c)?;
    let Some(&highest) = ids.last() else {
        return Ok(0);
    };
    sqlite_task_index::forget(c, &ids)?;
    let deleted = diesel::delete(events::table.filter(events::id.eq_any(&ids))).execute(c)?;
    sqlite_marks::raise(c, sqlite_marks::PRUNED_THROUGH, highest)?;
    Ok(deleted)
}
