//! How every connection of the SQLite store is set up.

use std::time::Duration;

use super::checkpointer::{WAL_SIZE_LIMIT, WRITER_BACKSTOP_FRAMES};

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
