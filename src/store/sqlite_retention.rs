//! SQLite's retention: the oldest events deleted in batches, and the
//! highest id deleted remembered (a resume from below it is told events
//! were lost: `replay_truncated`).

use diesel::{prelude::*, sqlite::SqliteConnection};

use super::{
    schema::{broker_state, events},
    sqlite_task_index,
};

/// `broker_state` key: the highest event id retention deleted.
pub(super) const PRUNED_THROUGH_KEY: &str = "pruned_through_id";

/// Deletes up to `batch` of the oldest events created before `cutoff_ms`;
/// answers how many.
pub(super) fn prune_batch(
    c: &mut SqliteConnection,
    cutoff_ms: i64,
    batch: i64,
) -> QueryResult<usize> {
    let ids: Vec<i64> = events::table
        .filter(events::created_at_ms.lt(cutoff_ms))
        .order(events::id.asc())
        .limit(batch)
        .select(events::id)
        .load(c)?;
    let Some(&highest) = ids.last() else {
        return Ok(0);
    };
    sqlite_task_index::forget(c, highest, cutoff_ms)?;
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
