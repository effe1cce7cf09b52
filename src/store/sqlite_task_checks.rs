//! Which of a batch's task checks SQLite can skip.
//!
//! A text write between its task's row refreshes carries a check instead
//! of the row: its event is stored only while the task is unfinished in
//! the store (see `actors::live_tasks`), so a finish written by another
//! writer wins. On SQLite that other writer can only be another process
//! on the same file: within this one every task write goes through
//! LiveTasks, whose memory already refuses writes to a finished task. One
//! point query per text event (a ninth of the store's CPU at 300 paced
//! uploads) mostly re-read what the previous commit had just read.
//!
//! So a check is skipped when the same task was last found unfinished by
//! this store (by a check, or by a row write that left it unfinished) and
//! no one else has added an event since: every write that finishes a task also
//! stores its `complete` or `error` event, so another writer shows in the
//! events' AUTOINCREMENT sequence moving past what this store's last batch
//! left it at. Then everything known is forgotten and every task is
//! checked again once. A row edited by hand, without an event, is not
//! seen until the task's next row refresh (at most a second later).

use std::{collections::HashSet, sync::Mutex};

/// Beyond this many remembered tasks the memory starts over (each task is
/// then checked once more).
const MAX_REMEMBERED: usize = 100_000;

#[derive(Default)]
pub(super) struct TaskChecks {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The events' sequence as this store's last committed batch left it;
    /// `None` while a batch is in flight or after one failed.
    sequence: Option<i64>,
    /// Tasks this store last saw unfinished: by a check, or by a row write
    /// that left them so.
    unfinished: HashSet<String>,
}

impl TaskChecks {
    /// At a batch's start, under the write lock, with the events' sequence
    /// as the store holds it: the checks that must still run.
    pub(super) fn to_run(&self, sequence: i64, checks: Vec<String>) -> Vec<String> {
        let mut state = self.lock();
        let left_at = state.sequence.take();
        if left_at.is_some_and(|left_at| left_at != sequence) {
            tracing::debug!(
                left_at,
                found = sequence,
                "another writer added events: every task is checked again"
            );
        }
        if left_at != Some(sequence) || state.unfinished.len() > MAX_REMEMBERED {
            state.unfinished.clear();
        }
        checks
            .into_iter()
            .filter(|task_id| !state.unfinished.contains(task_id))
            .collect()
    }

    /// The batch's checks and row writes ran: `checked` less `finished`
    /// are unfinished in the store; each of `written` is a task whose row
    /// the batch wrote, and whether the row is unfinished now (`false`
    /// also when the write found it finished).
    pub(super) fn ran<'a>(
        &self,
        checked: Vec<String>,
        finished: &[String],
        written: impl IntoIterator<Item = (&'a str, bool)>,
    ) {
        let mut state = self.lock();
        for (task_id, unfinished) in written {
            if unfinished {
                state.unfinished.insert(task_id.to_owned());
            } else {
                state.unfinished.remove(task_id);
            }
        }
        state.unfinished.extend(
            checked
                .into_iter()
                .filter(|task_id| !finished.contains(task_id)),
        );
    }

    /// The batch committed and left the events' sequence at `sequence`.
    pub(super) fn committed(&self, sequence: i64) {
        self.lock().sequence = Some(sequence);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a cache of what the store holds: a panic half-way
        // leaves it no worse than forgotten.
        self.state.lock().unwrap_or_else(|poisoned| {
            let mut state = poisoned.into_inner();
            state.sequence = None;
            state
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InsertOutcome;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    /// Checks that have found `task` unfinished in a batch that left the
    /// events' sequence at `sequence`.
    fn known_unfinished(task: &str, sequence: i64) -> TaskChecks {
        let checks = TaskChecks::default();
        assert_eq!(checks.to_run(sequence - 1, ids(&[task])), ids(&[task]));
        checks.ran(ids(&[task]), &[], []);
        checks.committed(sequence);
        checks
    }

    #[test]
    fn a_task_found_unfinished_is_not_checked_again_until_another_writer_adds_events() {
        let checks = TaskChecks::default();
        assert_eq!(checks.to_run(10, ids(&["a", "b"])), ids(&["a", "b"]));
        checks.ran(ids(&["a", "b"]), &ids(&["b"]), []);
        checks.committed(12);
        // Nothing but this store wrote: only the finished one is read again.
        assert_eq!(checks.to_run(12, ids(&["a", "b"])), ids(&["b"]));
        checks.ran(ids(&["b"]), &ids(&["b"]), []);
        checks.committed(14);
        // Another writer added an event (the sequence moved on): all again.
        assert_eq!(checks.to_run(15, ids(&["a"])), ids(&["a"]));
    }

    #[test]
    fn a_row_written_finished_is_checked_again_and_one_written_unfinished_is_not() {
        let checks = known_unfinished("a", 2);
        checks.to_run(2, Vec::new());
        checks.ran(Vec::new(), &[], [("a", false), ("b", true)]);
        checks.committed(3);
        assert_eq!(checks.to_run(3, ids(&["a", "b"])), ids(&["a"]));
    }

    #[test]
    fn after_a_batch_that_did_not_commit_everything_is_checked_again() {
        let checks = known_unfinished("a", 2);
        // This batch rolls back: `committed` is never called.
        assert!(checks.to_run(2, ids(&["a"])).is_empty());
        checks.ran(Vec::new(), &[], []);
        // The sequence is back where it was, yet the store's view was lost.
        assert_eq!(checks.to_run(2, ids(&["a"])), ids(&["a"]));
    }

    /// Two stores on one new SQLite file, as two broker processes would
    /// be, and the task `gen` created through the first.
    async fn two_stores_on_one_file() -> (
        tempfile::TempDir,
        crate::store::sqlite::SqliteStore,
        crate::store::sqlite::SqliteStore,
        crate::domain::Task,
    ) {
        use std::time::Duration;

        use crate::{
            config::DatabaseUrl,
            domain::{Task, TaskId},
            store::{Deadline, rows::TaskRow, run_migrations, sqlite::SqliteStore},
            telemetry::Metrics,
        };

        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("events.db");
        run_migrations(&DatabaseUrl::Sqlite { path: path.clone() })
            .await
            .expect("migrated");
        let open = || {
            SqliteStore::open(&path, Duration::from_secs(5), Metrics::new("unit", None))
                .expect("opened")
        };
        let (this, other) = (open(), open());
        let task = Task::new(TaskId::parse("gen").expect("an id"), None, None, None, 1);
        let created = this
            .insert_task(
                TaskRow::from(&task),
                &Deadline::after(Duration::from_secs(5)),
            )
            .await;
        created.expect("created");
        (dir, this, other, task)
    }

    /// Two stores on one file, as two broker processes would be: a cancel
    /// the second writes is seen by the first's next check, though the
    /// first had found the task unfinished just before.
    #[actix_rt::test]
    async fn a_finish_another_process_wrote_is_seen_by_the_next_check() {
        use std::{sync::Arc, time::Duration};

        use crate::{
            domain::{TaskChange, TextKind, text_event},
            store::{
                Deadline,
                rows::{EventRow, TaskRow},
                sqlite::SqliteStore,
            },
        };

        let (_dir, this, other, task) = two_stores_on_one_file().await;
        let deadline = || Deadline::after(Duration::from_secs(5));
        let running = Arc::new(task.apply(&TaskChange::Text, 2).expect("running"));
        let text = |delta: &str| {
            vec![EventRow::from(&text_event(
                &running,
                TextKind::Answer,
                delta.into(),
            ))]
        };
        let with_no_version = |tasks: Vec<TaskRow>| tasks.into_iter().map(|t| (t, None)).collect();
        let write = |store: &SqliteStore, rows, tasks: Vec<TaskRow>, checks: Vec<String>| {
            let store = store.clone();
            async move {
                store
                    .insert_batch(
                        rows,
                        with_no_version(tasks),
                        checks,
                        Vec::new(),
                        0,
                        &deadline(),
                    )
                    .await
                    .expect("committed")
            }
        };
        let the_task = || vec!["gen".to_owned()];
        write(&this, text("a"), vec![TaskRow::from(&*running)], Vec::new()).await;
        // Checked once, found unfinished: a check the next batch may skip.
        let checked = write(&this, text("b"), Vec::new(), the_task()).await;
        assert!(checked.stale_tasks.is_empty());

        // Act: the other process cancels the task, with its `error` event.
        let cancelled = running.apply(&TaskChange::Cancel, 3).expect("cancelled");
        let error = crate::domain::change_events(&cancelled, &TaskChange::Cancel);
        let error = error.iter().map(EventRow::from).collect();
        write(&other, error, vec![TaskRow::from(&cancelled)], Vec::new()).await;
        let late = write(&this, text("c"), Vec::new(), the_task()).await;

        // Assert
        assert_eq!(late.stale_tasks, the_task());
        assert!(matches!(late.outcomes[..], [InsertOutcome::Skipped]));
    }

    #[actix_web::test]
    async fn a_seq_another_process_accepted_makes_a_write_that_did_not_know_it_stale() {
        use std::{sync::Arc, time::Duration};

        use crate::{
            domain::{TaskChange, TextKind, text_event},
            store::{
                Deadline,
                rows::{EventRow, SeqCheck},
                sqlite::SqliteStore,
            },
        };

        let (_dir, this, other, task) = two_stores_on_one_file().await;
        let deadline = || Deadline::after(Duration::from_secs(5));
        let at_seq = |seq: u64| {
            let mut task = task.apply(&TaskChange::Text, 2).expect("running");
            task.last_seq = Some(seq);
            Arc::new(task)
        };
        let numbered = |store: &SqliteStore, seq: u64, known: Option<i64>| {
            let (store, task) = (store.clone(), at_seq(seq));
            async move {
                let rows = vec![EventRow::from(&text_event(
                    &task,
                    TextKind::Answer,
                    format!("<{seq}>"),
                ))];
                let check = SeqCheck {
                    task_id: "gen".into(),
                    known,
                };
                store
                    .insert_batch(rows, Vec::new(), Vec::new(), vec![check], 0, &deadline())
                    .await
                    .expect("committed")
            }
        };
        assert!(numbered(&this, 1, None).await.stale_tasks.is_empty());

        // Act: the other process accepts seq 2; this one, still knowing 1,
        // is offered seq 2 again (a retry sent to both).
        assert!(numbered(&other, 2, Some(1)).await.stale_tasks.is_empty());
        let retried = numbered(&this, 2, Some(1)).await;

        // Assert: nothing written; once it knows 2, seq 3 is.
        assert_eq!(retried.stale_tasks, ["gen"]);
        assert!(matches!(retried.outcomes[..], [InsertOutcome::Skipped]));
        assert!(numbered(&this, 3, Some(2)).await.stale_tasks.is_empty());
    }
}
