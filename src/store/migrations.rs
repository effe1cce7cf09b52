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
                // Before anything changes the file (WAL is a lasting mode).
                check_ours(&mut connection, &path)?;
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
                    .map_err(|e| unreachable_postgres(&url, &e))?;
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

/// A failed first connection to PostgreSQL, with what an operator needs:
/// diesel-async keeps only the driver's top line ("error connecting to
/// server"), so the address (password masked) and the system's reason for
/// a TCP connection to it are added. Only on the way to an error.
fn unreachable_postgres(url: &str, error: &dyn std::fmt::Display) -> StoreError {
    use std::net::{TcpStream, ToSocketAddrs};
    let Ok(parsed) = url::Url::parse(url) else {
        return StoreError::Open(error.to_string());
    };
    let host = parsed.host_str().unwrap_or("localhost");
    let port = parsed.port().unwrap_or(5432);
    let reason = match (host, port).to_socket_addrs() {
        Err(resolving) => Some(format!("cannot resolve {host}: {resolving}")),
        Ok(mut addresses) => addresses.next().and_then(|address| {
            TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2))
                .err()
                .map(|refused| format!("{address}: {refused}"))
        }),
    };
    let masked = crate::config::masked_url(&parsed);
    StoreError::Open(match reason {
        Some(reason) => format!("{error} ({masked}; {reason})"),
        None => format!("{error} ({masked})"),
    })
}

/// The directory a SQLite file goes in, created if missing (the default
/// `sqlite://data/sse-broker.db` needs no set-up).
pub(super) fn create_parent_directory(database: &Path) -> Result<(), StoreError> {
    let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    // create_dir_all says only "File exists" when a file is in the way.
    if let Some(file) = parent
        .ancestors()
        .find(|a| a.metadata().is_ok_and(|m| !m.is_dir()))
    {
        return Err(StoreError::Open(format!(
            "cannot put {} in {}: {} is a file, not a directory",
            database.display(),
            parent.display(),
            file.display()
        )));
    }
    std::fs::create_dir_all(parent)
        .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", parent.display())))
}

/// The version diesel records for the first SQLite migration: a file
/// that has it was made by the broker.
fn first_sqlite_migration() -> Result<String, StoreError> {
    use diesel::migration::MigrationSource;
    let migrations = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    // Versions are digits of one length (a date and a number): the least
    // string is the first migration, whatever order they are listed in.
    migrations
        .iter()
        .map(|migration| migration.name().version().to_string())
        .min()
        .ok_or_else(|| StoreError::Migration("no SQLite migrations are embedded".into()))
}

#[derive(diesel::QueryableByName)]
struct Names {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    names: Option<String>,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

/// A `--database-url` naming another program's SQLite file (a typo, a
/// copied command line) must not get the broker's tables added to it, nor
/// have the broker prune and rewrite it: a file with tables is the broker's
/// only when its migration record says so. An empty or new file is taken.
fn check_ours(connection: &mut SqliteConnection, path: &str) -> Result<(), StoreError> {
    use diesel::RunQueryDsl;
    let unreadable =
        |e: diesel::result::Error| StoreError::Open(format!("cannot read {path}: {e}"));
    let tables = diesel::sql_query(
        "SELECT group_concat(name, ', ') AS names FROM (SELECT name FROM sqlite_master \
         WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name)",
    )
    .get_result::<Names>(connection)
    .map_err(unreadable)?
    .names;
    let Some(tables) = tables else {
        return Ok(());
    };
    let recorded = tables
        .split(", ")
        .any(|t| t == "__diesel_schema_migrations")
        && diesel::sql_query(
            "SELECT count(*) AS count FROM __diesel_schema_migrations WHERE version = ?",
        )
        .bind::<diesel::sql_types::Text, _>(first_sqlite_migration()?)
        .get_result::<Count>(connection)
        .map_err(unreadable)?
        .count
            > 0;
    if recorded {
        Ok(())
    } else {
        Err(StoreError::Open(format!(
            "{path} is another program's database (its tables: {tables}); \
             give the broker a file of its own"
        )))
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
    async fn another_programs_database_is_refused_and_left_as_it_was() {
        let scratch = tempfile::tempdir().unwrap();
        for (name, setup) in [
            (
                "app.db",
                "CREATE TABLE users (id INTEGER PRIMARY KEY); CREATE TABLE orders (id INTEGER);",
            ),
            (
                "other-diesel.db",
                "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP); \
                 INSERT INTO __diesel_schema_migrations (version) VALUES ('20200101000000'); \
                 CREATE TABLE posts (id INTEGER PRIMARY KEY);",
            ),
        ] {
            let path = scratch.path().join(name);
            let mut other = SqliteConnection::establish(&path.display().to_string()).unwrap();
            diesel::connection::SimpleConnection::batch_execute(&mut other, setup).unwrap();
            drop(other);

            let refused = run_migrations(&DatabaseUrl::Sqlite { path: path.clone() })
                .await
                .unwrap_err()
                .to_string();

            assert!(
                refused.contains("another program's database")
                    && (refused.contains("orders, users") || refused.contains("posts")),
                "{name}: {refused}"
            );
            let mut reopened = SqliteConnection::establish(&path.display().to_string()).unwrap();
            let tables = diesel::RunQueryDsl::get_result::<Names>(
                diesel::sql_query(
                    "SELECT group_concat(name, ', ') AS names FROM sqlite_master WHERE type = 'table'",
                ),
                &mut reopened,
            )
            .unwrap()
            .names
            .unwrap();
            assert!(
                !tables.contains("events"),
                "{name}: the broker's tables were added: {tables}"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_postgres_is_named_with_the_systems_reason_and_no_password() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url = format!("postgres://app:s3cret@127.0.0.1:{port}/events");
        let database = DatabaseUrl::parse(&url).unwrap();

        let refused = run_migrations(&database).await.unwrap_err().to_string();

        assert!(
            refused.contains(&format!("127.0.0.1:{port}")) && refused.contains("refused"),
            "{refused}"
        );
        assert!(!refused.contains("s3cret"), "{refused}");
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_named() {
        let scratch = tempfile::tempdir().unwrap();
        let file = scratch.path().join("plain");
        std::fs::write(&file, "x").unwrap();

        let refused = create_parent_directory(&file.join("sub/events.db"))
            .unwrap_err()
            .to_string();

        assert!(
            refused.contains(&format!("{} is a file, not a directory", file.display())),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn the_brokers_own_file_and_an_empty_one_are_taken() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("empty.db");
        std::fs::File::create(&path).unwrap();
        let database = DatabaseUrl::Sqlite { path };

        assert!(
            run_migrations(&database).await.unwrap() > 0,
            "an empty file is migrated"
        );
        assert_eq!(
            run_migrations(&database).await.unwrap(),
            0,
            "and is the broker's after"
        );
    }

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
