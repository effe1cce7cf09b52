//! SQLite's marks in `broker_state`: ids the store has reached and keeps
//! across restarts. A mark only rises.

use diesel::{OptionalExtension, prelude::*, sqlite::SqliteConnection};

use super::schema::broker_state;

/// The highest event id retention deleted (a resume from below it is told
/// events were lost: `replay_truncated`).
pub(super) const PRUNED_THROUGH: &str = "pruned_through_id";
/// The highest event id whose task is in `task_events`
/// (`sqlite_task_index`).
pub(super) const TASK_INDEXED_THROUGH: &str = "task_indexed_through";

/// When the health sampler's write probe last wrote (its row is what it
/// writes; nothing reads it).
pub(super) const WRITE_PROBE: &str = "write_probe_at_ms";

/// Sets `key` to `value` unless it is set (it keeps the first value drawn).
pub(super) fn set_once(c: &mut SqliteConnection, key: &str, value: i64) -> QueryResult<()> {
    diesel::insert_into(broker_state::table)
        .values((broker_state::key.eq(key), broker_state::value.eq(value)))
        .on_conflict(broker_state::key)
        .do_nothing()
        .execute(c)
        .map(drop)
}

/// The file's identity, drawn again when the file is not the one it was
/// drawn for (see `store_identity`); in the caller's write transaction.
/// `true` when it was drawn again.
pub(super) fn claim_identity(c: &mut SqliteConnection, here: i64) -> QueryResult<(i64, bool)> {
    use super::store_identity::{STORE_IDENTITY, STORE_PLACE, drawn, is_copy};
    let recorded: Option<i64> = broker_state::table
        .find(STORE_PLACE)
        .select(broker_state::value)
        .first(c)
        .optional()?;
    let copy = is_copy(recorded, here);
    if copy {
        diesel::update(broker_state::table.find(STORE_IDENTITY))
            .set(broker_state::value.eq(drawn()))
            .execute(c)?;
    }
    diesel::insert_into(broker_state::table)
        .values((
            broker_state::key.eq(STORE_PLACE),
            broker_state::value.eq(here),
        ))
        .on_conflict(broker_state::key)
        .do_update()
        .set(broker_state::value.eq(here))
        .execute(c)?;
    set_once(c, STORE_IDENTITY, drawn())?;
    Ok((read(c, STORE_IDENTITY)?, copy))
}

/// Mark `key`, 0 while unset.
pub(super) fn read(c: &mut SqliteConnection, key: &str) -> QueryResult<i64> {
    Ok(broker_state::table
        .find(key)
        .select(broker_state::value)
        .first::<i64>(c)
        .optional()?
        .unwrap_or(0))
}

/// Raises mark `key` to `to` (a lower `to` leaves it where it is).
pub(super) fn raise(c: &mut SqliteConnection, key: &str, to: i64) -> QueryResult<()> {
    diesel::insert_into(broker_state::table)
        .values((broker_state::key.eq(key), broker_state::value.eq(to)))
        .on_conflict(broker_state::key)
        .do_update()
        .set(
            broker_state::value.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "MAX(value, excluded.value)",
            )),
        )
        .execute(c)
        .map(drop)
}
