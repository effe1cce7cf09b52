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

/// Where the database is: the server's own identifier where the role may
/// read it (a copy restored on another server under the same name), and
/// the database's name.
pub(super) async fn place(c: &mut AsyncPgConnection) -> QueryResult<String> {
    use diesel::sql_types::Text;
    let with_server = diesel::select(diesel::dsl::sql::<Text>(
        "(SELECT system_identifier::text FROM pg_control_system()) || '/' || current_database()",
    ))
    .get_result(c)
    .await;
    match with_server {
        Ok(place) => Ok(place),
        Err(_) => {
            diesel::select(diesel::dsl::sql::<Text>("current_database()"))
                .get_result(c)
                .await
        }
    }
}

/// The database's identity (see `store_identity`), in a transaction of its
/// own.
pub(super) async fn identity(c: &mut AsyncPgConnection) -> QueryResult<i64> {
    use diesel_async::AsyncConnection;
    let place = place(c).await?;
    let here = super::store_identity::place_mark(&place);
    let (identity, redrawn) = c
        .transaction::<_, diesel::result::Error, _>(async |c| claim_identity(c, here).await)
        .await?;
    if redrawn {
        super::store_identity::log_redrawn(&place);
    }
    Ok(identity)
}

/// The store's identity, drawn again when the store's place is not the one
/// it was drawn for (see `store_identity`). In the caller's transaction:
/// the place's row is locked, so instances starting together on a copy
/// draw one identity between them. `true` when it was drawn again.
pub(super) async fn claim_identity(
    c: &mut AsyncPgConnection,
    here: i64,
) -> QueryResult<(i64, bool)> {
    use super::store_identity::{STORE_IDENTITY, STORE_PLACE, drawn, is_copy};
    let recorded: Option<i64> = broker_state::table
        .find(STORE_PLACE)
        .select(broker_state::value)
        .for_update()
        .first(c)
        .await
        .optional()?;
    let copy = is_copy(recorded, here);
    if copy {
        diesel::update(broker_state::table.find(STORE_IDENTITY))
            .set(broker_state::value.eq(drawn()))
            .execute(c)
            .await?;
    }
    diesel::insert_into(broker_state::table)
        .values((
            broker_state::key.eq(STORE_PLACE),
            broker_state::value.eq(here),
        ))
        .on_conflict(broker_state::key)
        .do_update()
        .set(broker_state::value.eq(here))
        .execute(c)
        .await?;
    set_once(c, STORE_IDENTITY, drawn()).await?;
    Ok((read(c, STORE_IDENTITY).await?, copy))
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
