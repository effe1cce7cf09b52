//! PostgreSQL's marks in `broker_state`, and the newest committed id they
//! complete. A mark only rises.

use diesel::{
    OptionalExtension,
    prelude::*,
    sql_types::{BigInt, Nullable},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{broker_state, events};
use crate::domain::EventId;

/// The highest event id retention deleted (a resume from below it is told
/// events were lost: `replay_truncated`).
pub(super) const PRUNED_THROUGH: &str = "pruned_through_id";

/// When the health sampler's write probe last wrote (its row is what it
/// writes; nothing reads it).
pub(super) const WRITE_PROBE: &str = "write_probe_at_ms";

/// This database's identity in a cluster: a random number drawn by the
/// first instance to open it, so instances can tell their own deployment's
/// messages on a Redis shared with another one.
pub(super) const STORE_IDENTITY: &str = "store_identity";

/// Sets `key` to `value` unless it is set (it keeps the first value drawn).
pub(super) async fn set_once(c: &mut AsyncPgConnection, key: &str, value: i64) -> QueryResult<()> {
    diesel::insert_into(broker_state::table)
        .values((broker_state::key.eq(key), broker_state::value.eq(value)))
        .on_conflict(broker_state::key)
        .do_nothing()
        .execute(c)
        .await
        .map(drop)
}

/// Mark `key`, 0 while unset.
pub(super) async fn read(c: &mut AsyncPgConnection, key: &str) -> QueryResult<i64> {
    Ok(broker_state::table
        .find(key)
        .select(broker_state::value)
        .first::<i64>(c)
        .await
        .optional()?
        .unwrap_or(0))
}

/// Raises mark `key` to `to` (a lower `to` leaves it where it is).
pub(super) async fn raise(c: &mut AsyncPgConnection, key: &str, to: i64) -> QueryResult<()> {
    diesel::insert_into(broker_state::table)
        .values((broker_state::key.eq(key), broker_state::value.eq(to)))
        .on_conflict(broker_state::key)
        .do_update()
        .set(
            broker_state::value.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "GREATEST(broker_state.value, excluded.value)",
            )),
        )
        .execute(c)
        .await
        .map(drop)
}

diesel::define_sql_function! {
    /// SQL's `GREATEST`.
    fn greatest(a: BigInt, b: BigInt) -> BigInt;
}

diesel::define_sql_function! {
    /// SQL's `COALESCE`, of a nullable number and its default.
    fn coalesce(value: Nullable<BigInt>, default: BigInt) -> BigInt;
}

/// The last id committed: the newest row's, or, once retention has
/// removed every row up to it, the newest pruned one's. Ids come from a
/// sequence that never goes back, but an emptied table's `MAX(id)` does:
/// a batch would then claim a predecessor older than events already
/// routed, and a resume point inside the gap would be served from memory
/// without its `replay_truncated`. One statement, so a prune committing
/// meanwhile is seen either wholly or not at all; built from the query
/// builder, so it is prepared once per connection (it runs in every
/// commit), not parsed each time as SQL text would be.
pub(super) async fn latest_id(c: &mut AsyncPgConnection) -> QueryResult<EventId> {
    let newest_row = events::table
        .select(diesel::dsl::max(events::id))
        .single_value();
    let pruned_through = broker_state::table
        .find(PRUNED_THROUGH)
        .select(broker_state::value)
        .single_value();
    diesel::select(greatest(
        coalesce(newest_row, 0_i64),
        coalesce(pruned_through, 0_i64),
    ))
    .get_result::<i64>(c)
    .await
    .map(EventId)
}
