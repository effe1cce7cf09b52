//! `Checkpointer`: SQLite's WAL copied back into the database file on a
//! thread and connection of its own, so commits do not stop for it.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its
//! threshold: that commit, and every publish queued behind it, waits while
//! thousands of pages are copied and synced (about 13 ms at 50,000 tokens/s;
//! with it a token's p99 at 300 uploads was 30 ms where its p50 was 7, see
//! docs/performance.md, seventh sitting). Here, after commits, a thread of
//! lower priority runs PASSIVE checkpoints, which copy what the WAL holds
//! while the writers go on. The WAL starts over (and so stays bounded) only
//! when a writer begins while every frame is copied, which a checkpoint
//! running beside a steady stream of commits rarely leaves behind: so once
//! the WAL holds [`RESTART_FRAMES`] frames, the next writer, right after its
//! commit, copies the few frames committed since the last pass itself. The
//! writers' own automatic checkpoint only guards against a checkpointer that
//! stopped keeping up ([`WRITER_BACKSTOP_FRAMES`]).

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, Thread},
    time::{Duration, Instant},
};

use diesel::{
    connection::SimpleConnection as _, prelude::*, sql_types::Integer, sqlite::SqliteConnection,
};

use super::StoreError;
use crate::telemetry::Metrics;

/// The most often a busy store is checkpointed.
const PASS_EVERY: Duration = Duration::from_millis(250);
/// Commits since the last pass that make a store busy; a quieter one is
/// checkpointed at most every [`QUIET_PASS_EVERY`] (each pass syncs the WAL
/// and the database file).
const BUSY_COMMITS: u64 = 32;
const QUIET_PASS_EVERY: Duration = Duration::from_secs(1);
/// WAL frames (pages) past which the next writer finishes the copy, so the
/// WAL starts over: 16 MiB.
const RESTART_FRAMES: i32 = 4000;
/// A WAL a burst grew beyond this is cut back to it when it starts over
/// (64 MiB; the steady WAL stays well below).
pub const WAL_SIZE_LIMIT: u64 = 64 << 20;
/// The checkpointer thread's nice value (0 is normal, 19 the lowest).
#[cfg(target_os = "linux")]
const CHECKPOINT_NICE: libc::c_int = 10;
/// The writers' own automatic checkpoint, should this thread stop keeping
/// up (256 MiB of WAL).
pub const WRITER_BACKSTOP_FRAMES: u32 = 65_536;

/// What `PRAGMA wal_checkpoint` answers.
#[derive(Debug, QueryableByName)]
struct CheckpointOutcome {
    /// 1 when the checkpoint could not run or finish (another checkpoint
    /// held the lock, or a reader still needed the frames).
    #[diesel(sql_type = Integer)]
    busy: i32,
    /// Frames in the WAL.
    #[diesel(sql_type = Integer)]
    log: i32,
    /// Frames of the WAL now in the database file.
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// This thread's pass.
    Passive,
    /// A writer's, after its commit, to let the WAL start over.
    Writer,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Passive => "passive",
            Self::Writer => "writer",
        }
    }
}

/// The checkpointing thread of one store; it ends when this is dropped
/// (with the store's last clone).
pub struct Checkpointer {
    shared: Arc<Shared>,
    thread: Thread,
    metrics: Metrics,
}

#[derive(Default)]
struct Shared {
    commits: AtomicU64,
    /// The WAL is long: the next writer finishes the copy.
    finish_wanted: AtomicBool,
    stopped: AtomicBool,
}

impl Checkpointer {
    /// Opens the checkpointer's own connection to the database at `path`
    /// and starts its thread.
    pub fn start(path: &Path, metrics: Metrics) -> Result<Self, StoreError> {
        let open_error = |e: &dyn std::fmt::Display| StoreError::Open(format!("checkpointer: {e}"));
        let mut connection =
            SqliteConnection::establish(&path.to_string_lossy()).map_err(|e| open_error(&e))?;
        // A pass never waits for a lock: one that finds a writer's
        // checkpoint running is simply the next one.
        connection
            .batch_execute("PRAGMA busy_timeout = 0;")
            .map_err(|e| open_error(&e))?;
        let shared = Arc::new(Shared::default());
        let thread = thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn({
                let shared = Arc::clone(&shared);
                let metrics = metrics.clone();
                move || run(connection, &shared, &metrics)
            })
            .map_err(|e| open_error(&e))?;
        Ok(Self {
            shared,
            thread: thread.thread().clone(),
            metrics,
        })
    }

    /// A write committed on `connection`: the WAL grew. When it has grown
    /// long, this writer copies what the last pass left, so the next
    /// writer starts the WAL over (a few frames: the pass just copied the
    /// rest).
    pub fn committed(&self, connection: &mut SqliteConnection) {
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        // A load first: nearly every commit finds nothing wanted, and a
        // swap would write the shared line each time.
        if !self.shared.finish_wanted.load(Ordering::Acquire)
            || !self.shared.finish_wanted.swap(false, Ordering::AcqRel)
        {
            return;
        }
        let finished = checkpoint(connection, Mode::Writer, &self.metrics)
            .is_ok_and(|outcome| outcome.busy == 0 && outcome.checkpointed == outcome.log);
        if !finished {
            // A pass was running, or another writer committed meanwhile:
            // the next commit tries again.
            self.shared.finish_wanted.store(true, Ordering::Release);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

fn run(mut connection: SqliteConnection, shared: &Shared, metrics: &Metrics) {
    lower_priority();
    let mut seen = 0;
    let mut last_pass = Instant::now();
    loop {
        thread::park_timeout(PASS_EVERY);
        if shared.stopped.load(Ordering::Acquire) {
            return;
        }
        let commits = shared.commits.load(Ordering::Relaxed);
        let since = last_pass.elapsed();
        let due = match commits - seen {
            0 => false,
            n if n >= BUSY_COMMITS => since >= PASS_EVERY,
            _ => since >= QUIET_PASS_EVERY,
        };
        if !due {
            continue;
        }
        seen = commits;
        last_pass = Instant::now();
        match checkpoint(&mut connection, Mode::Passive, metrics) {
            Ok(outcome) if outcome.log >= RESTART_FRAMES => {
                // What was committed during that pass, copied at once: the
                // writer that finishes the copy is left a handful of frames.
                let _ = checkpoint(&mut connection, Mode::Passive, metrics);
                shared.finish_wanted.store(true, Ordering::Release);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "WAL checkpoint failed; tried again at the next pass");
            }
        }
    }
}

/// Lets the threads that serve requests go first when they share a core
/// with this one: a pass copies thousands of pages in one go, and at equal
/// priority it held the core for its whole time slice while commits and
/// deliveries waited.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` has no preconditions; `setpriority` on one's own
        // thread id changes only this thread's nice value.
        let failed = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, CHECKPOINT_NICE) != 0
        };
        if failed {
            tracing::debug!("the checkpointer runs at normal priority");
        }
    }
}

fn checkpoint(
    connection: &mut SqliteConnection,
    mode: Mode,
    metrics: &Metrics,
) -> QueryResult<CheckpointOutcome> {
    let started = Instant::now();
    let outcome = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
        .get_result::<CheckpointOutcome>(connection)?;
    let took = started.elapsed();
    metrics.record_checkpoint(mode.as_str(), took.as_secs_f64());
    tracing::debug!(
        mode = mode.as_str(),
        busy = outcome.busy,
        frames = outcome.log,
        checkpointed = outcome.checkpointed,
        took_ms = took.as_secs_f64() * 1e3,
        "WAL checkpoint"
    );
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use diesel::sql_types::{BigInt, Text};
    use diesel_migrations::MigrationHarness;

    use super::*;
    use crate::store::{migrations::SQLITE_MIGRATIONS, sqlite_settings::connection_pragmas};

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// A migrated WAL database in a temporary directory, a writer set up as
    /// the store's, and the checkpointer beside it.
    fn database() -> (tempfile::TempDir, PathBuf, SqliteConnection, Checkpointer) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("events.db");
        let mut writer =
            SqliteConnection::establish(&path.to_string_lossy()).expect("the database opens");
        writer
            .batch_execute("PRAGMA journal_mode = WAL;")
            .expect("WAL mode");
        writer
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .expect("the migrations apply");
        // The schema into the database file, so a copy of it alone has the
        // tables (the broker migrates on a connection of its own).
        writer
            .batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("the schema is checkpointed");
        writer
            .batch_execute(&connection_pragmas(Duration::from_secs(5)))
            .expect("the store's settings");
        let checkpointer = Checkpointer::start(&path, Metrics::new("unit", None))
            .expect("the checkpointer starts");
        (dir, path, writer, checkpointer)
    }

    /// Commits `count` events of `bytes` each and tells the checkpointer,
    /// as the store's writes do.
    fn commit(
        writer: &mut SqliteConnection,
        checkpointer: &Checkpointer,
        count: usize,
        bytes: usize,
    ) {
        let data = format!("\"{}\"", "x".repeat(bytes));
        writer
            .immediate_transaction(|c| {
                for _ in 0..count {
                    diesel::sql_query(
                        "INSERT INTO events (event_type, data, created_at_ms) VALUES ('commit', ?, 1)",
                    )
                    .bind::<Text, _>(&data)
                    .execute(c)?;
                }
                QueryResult::Ok(())
            })
            .expect("the batch commits");
        checkpointer.committed(writer);
    }

    /// The events in the database file alone, without its WAL: what
    /// checkpoints have copied there. A copy taken while a checkpoint is
    /// writing the file can be torn (SQLite reads it as malformed), which
    /// says nothing about the store: it is taken again.
    fn events_in_database_file(path: &Path, copy: &str) -> i64 {
        let copy = path.with_file_name(copy);
        let mut attempts = 0;
        loop {
            std::fs::copy(path, &copy).expect("the database file copies");
            let mut c =
                SqliteConnection::establish(&copy.to_string_lossy()).expect("the copy opens");
            match diesel::sql_query("SELECT count(*) AS n FROM events").get_result::<Count>(&mut c)
            {
                Ok(count) => return count.n,
                Err(error) if attempts < 20 => {
                    attempts += 1;
                    eprintln!("a torn copy ({error}); again");
                    thread::sleep(Duration::from_millis(50));
                }
                Err(error) => panic!("the copy reads: {error}"),
            }
        }
    }

    #[test]
    fn committed_events_reach_the_database_file_though_no_writer_checkpoints() {
        let (_dir, path, mut writer, checkpointer) = database();
        for _ in 0..5 {
            commit(&mut writer, &checkpointer, 10, 100);
        }
        // Far below the writers' backstop: only the checkpointer copies.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut copied = 0;
        for attempt in 0.. {
            copied = events_in_database_file(&path, &format!("copy-{attempt}.db"));
            if copied == 50 || Instant::now() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(copied, 50, "every committed event is in the database file");
    }

    /// How often the WAL started over: its header's checkpoint sequence
    /// number (big-endian, bytes 12 to 15), which each restart increments.
    fn wal_restarts(path: &Path) -> u32 {
        let wal = std::fs::read(path.with_file_name("events.db-wal")).expect("the WAL reads");
        u32::from_be_bytes(wal[12..16].try_into().expect("a WAL header"))
    }

    #[test]
    fn a_long_wal_starts_over_though_commits_never_pause() {
        let (_dir, path, mut writer, checkpointer) = database();
        commit(&mut writer, &checkpointer, 1, 100);
        let before = wal_restarts(&path);
        // Commits back to back, far fewer frames than the writers' backstop
        // (65,536): only the checkpointer lets the WAL start over (its
        // passes, or the writer it asks to finish the copy).
        // Until it has (a loaded machine may run the checkpointer late), at
        // least 2.5 s, at most 15 s.
        let start = Instant::now();
        let mut restarts = 0;
        while start.elapsed() < Duration::from_millis(2500)
            || (restarts == 0 && start.elapsed() < Duration::from_secs(15))
        {
            commit(&mut writer, &checkpointer, 1, 40 * 1024);
            restarts = wal_restarts(&path) - before;
        }
        assert!(
            restarts >= 1,
            "the WAL started over while commits went on: {restarts} times"
        );
        assert!(events_in_database_file(&path, "copy.db") > 0);
    }
}
