//! SQLite's index of each task's events, written in sorted batches.
//!
//! An index on `events (task_id, id)` put every new event of a running
//! task on that task's own leaf page: with hundreds of generations
//! streaming at once, a group commit of N events dirtied N scattered index
//! pages, and SQLite writes each dirtied page whole into the WAL and copies
//! it back at the checkpoint. At 500 uploads × 50 tokens/s that index was
//! three quarters of the store's page writes and about a sixth of the
//! broker's CPU per token (docs/performance.md, ninth sitting).
//!
//! Here `task_events (task_id, id)` is filled by a writer, inside its own
//! commit, at most every [`PASS_EVERY_MS`]: every task event committed since
//! the last pass, sorted by task, so a pass dirties about one page per
//! task instead of one per event. Events after the last pass (their id
//! above the `task_indexed_through` mark) are found by scanning
//! the table's tail by id. A reader takes both parts in one transaction,
//! so it sees the index and its mark as one commit left them: every event
//! exactly once.
//!
//! (PostgreSQL keeps its plain index: it writes index pages into its WAL
//! only once per checkpoint cycle.)

use std::time::Instant;

use diesel::{OptionalExtension, prelude::*, sql_types::BigInt, sqlite::SqliteConnection};

use super::{
    EventPage,
    periodic::Periodic,
    queries,
    rows::StoredEventRow,
    schema::{events, task_events},
    sqlite_marks,
};
use crate::{domain::EventId, telemetry::Metrics};

/// The most often a writer indexes what was committed since the last pass;
/// also the most a task's unindexed tail grows between passes while events
/// are being committed.
const PASS_EVERY_MS: i64 = 100;

/// When the last pass was claimed, shared by the store's connections.
#[derive(Debug)]
pub(super) struct TaskIndexer {
    passes: Periodic,
    metrics: Metrics,
}

impl TaskIndexer {
    pub(super) fn new(metrics: Metrics) -> Self {
        Self {
            // The first commit runs a pass.
            passes: Periodic::new(PASS_EVERY_MS),
            metrics,
        }
    }

    /// Runs a claimed pass in the caller's write transaction (see
    /// [`index_pass`]), timed.
    pub(super) fn pass(&self, c: &mut SqliteConnection, latest_id: i64) -> QueryResult<()> {
        let started = Instant::now();
        let indexed = index_pass(c, latest_id)?;
        self.metrics
            .record_task_index_pass(started.elapsed().as_secs_f64());
        tracing::debug!(indexed, through = latest_id, "task index pass");
        Ok(())
    }

    /// Whether the caller, about to commit, should run a pass in its
    /// transaction; at most one caller per [`PASS_EVERY_MS`] is told so.
    pub(super) fn claim_pass(&self) -> bool {
        self.passes.claim()
    }
}

/// Indexes every task event above the mark, up to `latest_id` (the highest
/// id handed out, the caller's own events included), and moves the mark;
/// answers how many entries it added. Runs inside the caller's write
/// transaction.
pub(super) fn index_pass(c: &mut SqliteConnection, latest_id: i64) -> QueryResult<usize> {
    let through = indexed_through(c)?;
    if latest_id <= through {
        return Ok(0);
    }
    // OR IGNORE: a statement that cannot abort half-way needs no statement
    // journal, which would copy every page it touches once more.
    let indexed = diesel::sql_query(
        "INSERT OR IGNORE INTO task_events (task_id, id) SELECT task_id, id FROM events \
         WHERE id > ? AND id <= ? AND task_id IS NOT NULL ORDER BY task_id, id",
    )
    .bind::<BigInt, _>(through)
    .bind::<BigInt, _>(latest_id)
    .execute(c)?;
    sqlite_marks::raise(c, sqlite_marks::TASK_INDEXED_THROUGH, latest_id)?;
    Ok(indexed)
}

fn indexed_through(c: &mut SqliteConnection) -> QueryResult<i64> {
    sqlite_marks::read(c, sqlite_marks::TASK_INDEXED_THROUGH)
}

/// Ids the index answers per query: a page is filled from at most this
/// many of the task's entries at a time, so a long task's replay costs
/// each page its own rows, not all the task's entries after it.
const IDS_PER_QUERY: i64 = 512;

/// One page of the stored events of `task` (the page's task filter) after
/// `page.after`, narrowed by the page's other filters, oldest first: the
/// indexed ones, then the tail.
pub(super) fn task_events_after(
    c: &mut SqliteConnection,
    task: &str,
    page: EventPage,
) -> QueryResult<Vec<StoredEventRow>> {
    c.transaction(|c| {
        let through = indexed_through(c)?;
        let mut rows: Vec<StoredEventRow> = Vec::new();
        let mut cursor = page.after.0;
        while cursor < through && (rows.len() as i64) < page.limit {
            let batch = || {
                task_events::table
                    .filter(task_events::task_id.eq(task))
                    .filter(task_events::id.gt(cursor))
                    .filter(task_events::id.le(through))
                    .order(task_events::id.asc())
                    .limit(IDS_PER_QUERY)
                    .select(task_events::id)
            };
            let wanted = EventPage {
                after: EventId(cursor),
                limit: page.limit - rows.len() as i64,
                ..page.clone()
            };
            rows.extend(
                queries::events_after!(wanted)
                    .filter(events::id.eq_any(batch()))
                    .load::<StoredEventRow>(c)?,
            );
            if (rows.len() as i64) >= page.limit {
                break;
            }
            // Short: the filters left out some of the batch, or the index
            // has no more. Only then is the batch itself read.
            let ids: Vec<i64> = batch().load(c)?;
            cursor = match ids.last() {
                Some(&last) if ids.len() as i64 == IDS_PER_QUERY => last,
                _ => through,
            };
        }
        let missing = page.limit - rows.len() as i64;
        if missing > 0 {
            let tail = EventPage {
                after: page.after.max(EventId(through)),
                limit: missing,
                ..page
            };
            rows.extend(queries::events_after!(tail).load::<StoredEventRow>(c)?);
        }
        Ok(rows)
    })
}

/// The `seq` stored with `task`'s newest `text` event that has one: in
/// the tail, else in the index, newest first.
pub(super) fn latest_text_seq(c: &mut SqliteConnection, task: String) -> QueryResult<Option<i64>> {
    c.transaction(|c| {
        let through = indexed_through(c)?;
        let in_tail = queries::latest_text_seq!(task.clone())
            .filter(events::id.gt(through))
            .first::<Option<i64>>(c)
            .optional()?;
        if let Some(seq) = in_tail {
            return Ok(seq);
        }
        let mut below = through;
        loop {
            let ids: Vec<i64> = task_events::table
                .filter(task_events::task_id.eq(&task))
                .filter(task_events::id.le(below))
                .order(task_events::id.desc())
                .limit(IDS_PER_QUERY)
                .select(task_events::id)
                .load(c)?;
            let Some(&oldest) = ids.last() else {
                return Ok(None);
            };
            let exhausted = (ids.len() as i64) < IDS_PER_QUERY;
            let found = queries::latest_text_seq!(task.clone())
                .filter(events::id.eq_any(ids))
                .first::<Option<i64>>(c)
                .optional()?;
            match found {
                Some(seq) => return Ok(seq),
                None if exhausted => return Ok(None),
                None => below = oldest - 1,
            }
        }
    })
}

/// Forgets the index entries of the events `ids`, which retention is about
/// to delete (each found by its task and id, through the events' key).
pub(super) fn forget(c: &mut SqliteConnection, ids: &[i64]) -> QueryResult<usize> {
    let ids = serde_json::to_string(ids).expect("integers serialize");
    diesel::sql_query(
        "DELETE FROM task_events WHERE (task_id, id) IN (SELECT task_id, id FROM events \
         WHERE id IN (SELECT value FROM json_each(?)) AND task_id IS NOT NULL)",
    )
    .bind::<diesel::sql_types::Text, _>(ids)
    .execute(c)
}

#[cfg(test)]
mod tests {
    use diesel::{Connection, sql_types::Text};
    use diesel_migrations::MigrationHarness;

    use super::*;
    use crate::store::sqlite::tests::{migrated, newest_id};

    /// Stores one event of `task` (or of none); answers its id.
    fn store(
        c: &mut SqliteConnection,
        task: Option<&str>,
        event_type: &str,
        seq: Option<i64>,
    ) -> i64 {
        diesel::sql_query(
            "INSERT INTO events (event_type, data, task_id, created_at_ms, seq) \
             VALUES (?, '{}', ?, 1, ?)",
        )
        .bind::<Text, _>(event_type)
        .bind::<diesel::sql_types::Nullable<Text>, _>(task)
        .bind::<diesel::sql_types::Nullable<BigInt>, _>(seq)
        .execute(c)
        .expect("stored");
        newest_id(c)
    }

    fn page(after: i64, limit: i64, types: Option<&[&str]>) -> EventPage {
        EventPage {
            after: EventId(after),
            event_types: types.map(|t| t.iter().map(ToString::to_string).collect()),
            project_id: None,
            task_id: Some("a".into()),
            visible_to: None,
            limit,
        }
    }

    fn ids(c: &mut SqliteConnection, page: EventPage) -> Vec<i64> {
        task_events_after(c, "a", page)
            .expect("readable")
            .into_iter()
            .map(|row| row.id)
            .collect()
    }

    /// Events of tasks `a` and `b` and of none, interleaved; the first
    /// `indexed` of them indexed by a pass.
    fn interleaved(indexed: usize) -> (SqliteConnection, Vec<i64>) {
        let mut c = migrated();
        let mut of_a = Vec::new();
        for n in 0..12 {
            let (task, kind) = match n % 3 {
                0 => (Some("a"), if n % 2 == 0 { "text" } else { "progress" }),
                1 => (Some("b"), "text"),
                _ => (None, "message"),
            };
            let id = store(&mut c, task, kind, None);
            if task == Some("a") {
                of_a.push(id);
            }
            if n + 1 == indexed {
                index_pass(&mut c, id).expect("indexed");
            }
        }
        (c, of_a)
    }

    #[test]
    fn a_tasks_events_are_found_once_each_whether_indexed_or_after_the_last_pass() {
        for indexed in [0, 1, 4, 7, 12] {
            let (mut c, of_a) = interleaved(indexed);
            assert_eq!(ids(&mut c, page(0, 100, None)), of_a, "{indexed} indexed");
            for (position, &after) in of_a.iter().enumerate() {
                assert_eq!(
                    ids(&mut c, page(after, 100, None)),
                    of_a[position + 1..],
                    "{indexed} indexed, after {after}"
                );
            }
            // A page boundary on either side of the mark.
            for limit in 1..=of_a.len() as i64 {
                assert_eq!(
                    ids(&mut c, page(0, limit, None)),
                    of_a[..limit as usize],
                    "{indexed} indexed, limit {limit}"
                );
            }
        }
    }

    #[test]
    fn the_pages_filters_apply_before_its_limit_on_both_sides_of_the_mark() {
        let (mut c, of_a) = interleaved(7);
        let texts: Vec<i64> = of_a.iter().copied().step_by(2).collect();
        assert_eq!(ids(&mut c, page(0, 100, Some(&["text"]))), texts);
        assert_eq!(ids(&mut c, page(0, 2, Some(&["text"]))), texts[..2]);
        assert_eq!(
            ids(&mut c, page(texts[0], 100, Some(&["text"]))),
            texts[1..]
        );
    }

    /// Reads `task_events_after` as `EventCursor` does: on from the last
    /// row, until a page comes back short.
    fn read_all(c: &mut SqliteConnection, types: Option<&[&str]>, limit: i64) -> Vec<i64> {
        let mut read = Vec::new();
        loop {
            let after = read.last().copied().unwrap_or(0);
            let rows = ids(c, page(after, limit, types));
            let short = (rows.len() as i64) < limit;
            read.extend(rows);
            if short {
                return read;
            }
        }
    }

    #[test]
    fn a_long_task_is_read_whole_across_many_index_queries_and_filtered_out_stretches() {
        let mut c = migrated();
        let (mut texts, mut all) = (Vec::new(), Vec::new());
        // More entries than one index query answers, a whole query's worth
        // of them filtered out by type, other tasks' events between.
        for n in 0..1400 {
            let kind = if (300..1000).contains(&n) {
                "progress"
            } else {
                "text"
            };
            let id = store(&mut c, Some("a"), kind, None);
            all.push(id);
            if kind == "text" {
                texts.push(id);
            }
            if n % 7 == 0 {
                store(&mut c, Some("b"), "text", None);
            }
            if n == 1200 {
                index_pass(&mut c, id).expect("indexed");
            }
        }
        for limit in [1, 100, 500, 2000] {
            assert_eq!(
                read_all(&mut c, Some(&["text"]), limit),
                texts,
                "limit {limit}"
            );
        }
        assert_eq!(read_all(&mut c, None, 500), all);
    }

    #[test]
    fn the_latest_text_seq_is_found_behind_a_long_run_of_events_without_one() {
        let mut c = migrated();
        store(&mut c, Some("a"), "text", Some(41));
        let mut last = 0;
        for _ in 0..1100 {
            last = store(&mut c, Some("a"), "progress", None);
        }
        index_pass(&mut c, last).expect("indexed");
        assert_eq!(
            latest_text_seq(&mut c, "a".into()).expect("readable"),
            Some(41)
        );
        assert_eq!(latest_text_seq(&mut c, "b".into()).expect("readable"), None);
    }

    #[test]
    fn one_commit_in_each_interval_is_told_to_run_a_pass_the_first_at_once() {
        let indexer = TaskIndexer::new(Metrics::new("unit", None));
        assert!(indexer.claim_pass(), "the first commit");
        assert!(!indexer.claim_pass(), "a commit right after it");
        std::thread::sleep(std::time::Duration::from_millis(PASS_EVERY_MS as u64 + 20));
        assert!(indexer.claim_pass(), "a commit an interval later");
        assert!(!indexer.claim_pass(), "and one right after that");
    }

    #[test]
    fn a_pass_indexes_only_what_is_above_the_mark_and_up_to_its_own_commit() {
        let mut c = migrated();
        let first = store(&mut c, Some("a"), "text", None);
        index_pass(&mut c, first).expect("indexed");
        let second = store(&mut c, Some("a"), "text", None);
        let later = store(&mut c, Some("a"), "text", None);
        index_pass(&mut c, second).expect("indexed");
        // Running a pass twice adds nothing (the primary key would refuse it).
        index_pass(&mut c, second).expect("indexed again");
        let indexed: Vec<i64> = task_events::table
            .select(task_events::id)
            .order(task_events::id)
            .load(&mut c)
            .expect("readable");
        assert_eq!(indexed, [first, second]);
        assert_eq!(indexed_through(&mut c).expect("readable"), second);
        assert_eq!(ids(&mut c, page(0, 100, None)), [first, second, later]);
    }

    #[test]
    fn the_latest_text_seq_is_found_in_the_tail_first_then_in_the_index() {
        let mut c = migrated();
        assert_eq!(latest_text_seq(&mut c, "a".into()).expect("readable"), None);
        store(&mut c, Some("a"), "text", Some(3));
        let last = store(&mut c, Some("a"), "text", Some(5));
        store(&mut c, Some("b"), "text", Some(9));
        store(&mut c, Some("a"), "progress", None);
        index_pass(&mut c, last + 2).expect("indexed");
        assert_eq!(
            latest_text_seq(&mut c, "a".into()).expect("readable"),
            Some(5)
        );
        store(&mut c, Some("a"), "text", Some(7));
        store(&mut c, Some("a"), "text", None);
        assert_eq!(
            latest_text_seq(&mut c, "a".into()).expect("readable"),
            Some(7)
        );
    }

    #[test]
    fn the_migration_indexes_the_events_already_stored() {
        let mut c = SqliteConnection::establish(":memory:").expect("an in-memory database");
        let migrations = super::super::migrations::SQLITE_MIGRATIONS;
        let before_index: Vec<_> =
            diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(&migrations)
                .expect("embedded")
                .into_iter()
                .take_while(|m| !m.name().to_string().contains("task_events"))
                .collect();
        diesel::migration::MigrationConnection::setup(&mut c).expect("bookkeeping");
        for migration in &before_index {
            c.run_migration(migration).expect("applies");
        }
        let old = store(&mut c, Some("a"), "text", None);
        store(&mut c, None, "message", None);
        c.run_pending_migrations(migrations)
            .expect("the rest apply");
        let new = store(&mut c, Some("a"), "text", None);
        assert_eq!(ids(&mut c, page(0, 100, None)), [old, new]);
        assert_eq!(indexed_through(&mut c).expect("readable"), old + 1);
    }

    #[test]
    fn forgotten_events_leave_the_index_and_the_rest_stays() {
        let (mut c, of_a) = interleaved(12);
        // A later event of `a` below the batch's last id, created after
        // the cutoff, keeps its entry.
        diesel::update(events::table.filter(events::id.eq(of_a[1])))
            .set(events::created_at_ms.eq(5))
            .execute(&mut c)
            .expect("updated");
        let highest = of_a[2];
        // Retention's batch: the events up to there created before 2.
        let batch: Vec<i64> = events::table
            .filter(events::id.le(highest))
            .filter(events::created_at_ms.lt(2))
            .select(events::id)
            .load(&mut c)
            .expect("readable");
        // Both tasks' entries in it: a's first and third, b's first two.
        assert_eq!(forget(&mut c, &batch).expect("forgotten"), 4);
        let indexed: Vec<i64> = task_events::table
            .filter(task_events::id.le(highest))
            .select(task_events::id)
            .order(task_events::id)
            .load(&mut c)
            .expect("readable");
        assert_eq!(indexed, [of_a[1]]);
    }

    /// The bundled SQLite must drive the indexed part by the task's ids
    /// (one primary-key lookup each), not scan the events after `after`.
    #[test]
    fn the_indexed_part_looks_events_up_by_id() {
        #[derive(QueryableByName)]
        struct Step {
            #[diesel(sql_type = Text)]
            detail: String,
        }
        let mut c = migrated();
        let plan: Vec<Step> = diesel::sql_query(
            "EXPLAIN QUERY PLAN SELECT id FROM events WHERE id > 0 AND event_type IN ('text') \
             AND task_id = 'a' AND id <= 100 AND id IN (SELECT id FROM task_events \
             WHERE task_id = 'a' AND id > 0 AND id <= 100 ORDER BY id LIMIT 512) \
             ORDER BY id LIMIT 10",
        )
        .load(&mut c)
        .expect("a plan");
        let plan: Vec<String> = plan.into_iter().map(|s| s.detail).collect();
        assert!(
            plan.iter()
                .any(|s| s.contains("SEARCH events USING INTEGER PRIMARY KEY (rowid=?)")),
            "{plan:?}"
        );
        assert!(
            plan.iter().any(|s| s.contains("SEARCH task_events")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|s| s.contains("TEMP B-TREE")), "{plan:?}");
    }
}
