//! How every connection of the SQLite store is set up, and their pool.

use std::{path::Path, time::Duration};

use deadpool::{Runtime, managed::QueueMode};
use diesel::sqlite::SqliteConnection;
use diesel_async::{
    AsyncConnection, SimpleAsyncConnection,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod, deadpool::Pool,
    },
    sync_connection_wrapper::SyncConnectionWrapper,
};
use futures_util::FutureExt;

use super::{
    StoreError,
    checkpointer::{WAL_SIZE_LIMIT, WRITER_BACKSTOP_FRAMES},
};

pub(super) type Connection = SyncConnectionWrapper<SqliteConnection>;

/// Readers run beside the single writer thanks to WAL.
const POOL_SIZE: usize = 4;

/// The store's connections, each set up with [`connection_pragmas`].
pub(super) fn connection_pool(
    path: &Path,
    timeout: Duration,
) -> Result<Pool<Connection>, StoreError> {
    let mut config = ManagerConfig::<Connection>::default();
    // An open connection stays usable (even on a file unlinked meanwhile:
    // `FileWatch` sees to that), so the default check (`SELECT 1` on every
    // checkout) only cost each commit and read one more trip to a blocking
    // thread; a connection left broken by an error is still discarded.
    config.recycling_method = RecyclingMethod::Fast;
    let pragmas = connection_pragmas(timeout);
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        let pragmas = pragmas.clone();
        // Opening is blocking work on a blocking thread, which diesel-async
        // waits out with `block_in_place` when the future waiting for it is
        // dropped: a panic on actix's current-thread runtime. Deadpool drops
        // a creation past its create timeout (a stalled disk), and a caller
        // its checkout at its deadline; a task of its own finishes opening
        // whatever becomes of the wait (a connection nobody took is closed).
        let opening = tokio::spawn(async move {
            let mut connection = Connection::establish(&url).await?;
            connection
                .batch_execute(&pragmas)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(connection)
        });
        async move {
            opening.await.unwrap_or_else(|failed| {
                Err(diesel::ConnectionError::BadConnection(failed.to_string()))
            })
        }
        .boxed()
    });
    let manager =
        AsyncDieselConnectionManager::<Connection>::new_with_config(path.to_string_lossy(), config);
    // The connection used last goes out first: in WAL mode a connection
    // drops its whole page cache when another one has written since, so
    // spreading work over the pool made nearly every commit start cold (a
    // sixth of its CPU went to re-reading pages).
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .queue_mode(QueueMode::Lifo)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .build()
        .map_err(|e| StoreError::Open(e.to_string()))
}

/// Per-connection settings. `busy_timeout` (the store timeout; each
/// operation then narrows it to what is left of its budget) comes first so
/// the others wait for a writer instead of failing. WAL itself is a
/// property of the file, set once by the migrations. NORMAL synchronous is
/// durable across process crashes in WAL mode (only an OS crash can lose
/// the last commits) and avoids an fsync per commit. A group commit's
/// multi-row INSERT keeps a statement journal; in memory it costs no file
/// writes (on disk it was a sixth of a commit's CPU). The WAL is
/// checkpointed by the store's `Checkpointer`, beside the writers (their
/// own automatic checkpoint is only its backstop), and cut back to
/// [`WAL_SIZE_LIMIT`] when it starts over after a burst.
pub(super) fn connection_pragmas(timeout: Duration) -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = {WRITER_BACKSTOP_FRAMES}; \
         PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};",
        timeout.as_millis().max(1)
    )
}
