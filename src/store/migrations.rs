//! Embedded migrations, applied by `serve` at start and by `migrate`.
//!
//! They run through diesel's sync harness (over the async PostgreSQL
//! connection via `AsyncConnectionWrapper`, so no libpq) on a blocking thread: the async
//! harness calls `block_in_place`, which panics on actix's current-thread
//! runtime.

use std::path::Path;

use diesel::{Connection, SqliteConnection};
use diesel_async::{AsyncPgConnection, async_connection_wrapper::AsyncConnectionWrapper};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::ExposeSecret;

use super::StoreError;
use crate::config::DatabaseUrl;

pub(super) const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Serializes migrations across instances ("SSEM").
const MIGRATION_LOCK: i64 = 0x5353_454D;

/// Applies pending migrations; returns how many ran.
pub async fn run_migrations(database: &DatabaseUrl) -> Result<usize, StoreError> {
    match database {
        DatabaseUrl::Sqlite { path } => {
            create_parent_directory(path)?;
            let path = path.to_string_lossy().into_owned();
            tokio::task::spawn_blocking(move || {
                let mut connection = SqliteConnection::establish(&path)
                    .map_err(|e| StoreError::Open(e.to_string()))?;
                // WAL is persistent: readers never block the writer, and the
                // pool's connections need not switch modes (which takes a lock).
                diesel::connection::SimpleConnection::batch_execute(
                    &mut connection,
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;",
                )
                .map_err(|e| StoreError::Open(e.to_string()))?;
                let applied = connection
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|applied| applied.len())
                    .map_err(|e| StoreError::Migration(e.to_string()))?;
                // WAL is a property of the file: switch it here, on one
                // connection, before the pool opens several. Pool connections
                // that each switch a fresh file race for its exclusive lock,
                // and SQLite answers "database is locked" at once (no busy
                // wait) to avoid a deadlock.
                diesel::connection::SimpleConnection::batch_execute(
                    &mut connection,
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;",
                )
                .map_err(|e| StoreError::Open(e.to_string()))?;
                check_writable(&mut connection, &path)?;
                Ok(applied)
            })
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?
        }
        DatabaseUrl::Postgres { url } => {
            let url = url.expose_secret().to_owned();
            tokio::task::spawn_blocking(move || {
                let mut connection = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
                    .map_err(|e| StoreError::Open(e.to_string()))?;
                // Instances starting together on a fresh database would race
                // on CREATE TABLE; the session lock lets one migrate at a time.
                diesel::RunQueryDsl::execute(
                    diesel::sql_query("SELECT pg_advisory_lock($1)")
                        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK),
                    &mut connection,
                )
                .map_err(|e| StoreError::Migration(e.to_string()))?;
                connection
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|applied| applied.len())
                    .map_err(|e| StoreError::Migration(e.to_string()))
            })
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?
        }
    }
}

/// The directory a SQLite file goes in, created if missing (the default
/// `sqlite://data/sse-broker.db` needs no set-up).
pub(super) fn create_parent_directory(database: &Path) -> Result<(), StoreError> {
    match database.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", parent.display()))),
        None => Ok(()),
    }
}

/// SQLite opens a file it may not write (mode 0444, another owner) read
/// only, without a word: the broker would start, say it is healthy and
/// refuse every publish. A statement that writes nothing still needs the
/// write lock, and is refused on such a file.
fn check_writable(connection: &mut SqliteConnection, path: &str) -> Result<(), StoreError> {
    diesel::connection::SimpleConnection::batch_execute(connection, "DELETE FROM events WHERE 0")
        .map_err(|e| StoreError::Open(format!("cannot write {path}: {e}")))
}

#[cfg(test)]
mod tests {
    use diesel::Connection;

    use super::*;

    #[tokio::test]
    async fn a_file_the_broker_cannot_write_is_refused_at_start() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("events.db");
        let database = DatabaseUrl::Sqlite { path: path.clone() };
        run_migrations(&database).await.unwrap();
        let path = path.display().to_string();

        let mut writable = SqliteConnection::establish(&path).unwrap();
        let mut read_only = SqliteConnection::establish(&format!("file:{path}?mode=ro")).unwrap();

        assert!(check_writable(&mut writable, &path).is_ok());
        let refused = check_writable(&mut read_only, &path)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("cannot write") && refused.contains("readonly"),
            "{refused}"
        );
    }
}
