//! A stalled or failing event store, produced for real: the `events` (or
//! `tasks`) table locked from a second PostgreSQL session, the SQLite write
//! lock held by another connection, a trigger that refuses every insert.
//!
//! Publishes, task writes, history and resumes must give up within
//! `--store-timeout-ms` (503, `Retry-After`), what was refused must never
//! be stored or delivered later, `/health` must say what the store's real
//! operations say (not a `SELECT 1`), and everything must work again, and
//! `/health` say so, once the store does.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use serde_json::{Value, json};
use sse_broker::config::DatabaseUrl;
use tokio::sync::oneshot;

use crate::{
    cluster::harness::TestDb,
    helpers::{
        BrokerProcess, OpenStream, SHORT, TestApp, assert_error, eventually, labelled_sum,
        spawn_app_with,
    },
};

/// Short, so the tests are quick; the bounds below are this plus a margin.
const STORE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Slack for a loaded 2-core machine: scheduling, the HTTP round trip.
const MARGIN: Duration = Duration::from_millis(1500);
/// Two samples of the HealthSampler (every 5 s) and some margin.
const SAMPLED: Duration = Duration::from_secs(12);
/// Longer than STORE_TIMEOUT + MARGIN: a broker that waits out the lock
/// answers too late to pass.
const LOCK_HOLD: Duration = Duration::from_secs(6);

fn event(marker: &str) -> Value {
    json!({"event_type": "system_status", "data": {"marker": marker}})
}

/// `GET /health`: status and body.
async fn health(app: &TestApp) -> (u16, Value) {
    let response = app.get("/health").await;
    let status = response.status().as_u16();
    let body = response.json().await.expect("/health answers JSON");
    (status, body)
}

async fn wait_for_health(
    app: &TestApp,
    timeout: Duration,
    what: &str,
    accept: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = health(app).await;
        if accept(status, &body) {
            return body;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for /health {what}; last: {status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has_alert(body: &Value, rule: &str) -> bool {
    body["alerts"]
        .as_array()
        .is_some_and(|alerts| alerts.iter().any(|a| a["type"] == rule))
}

/// Every stored event's marker, read through `/sse/history`.
async fn stored_markers(app: &TestApp) -> Vec<String> {
    let page = app.get_json("/sse/history?limit=1000").await;
    page["events"]
        .as_array()
        .expect("history lists events")
        .iter()
        .map(|e| e["data"]["marker"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The value of `name{labels}` in the Prometheus exposition, if served.
async fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = app.get("/metrics").await.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter(|line| {
            labels
                .iter()
                .all(|(label, value)| line.contains(&format!("{label}=\"{value}\"")))
        })
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// Times `request`; asserts it answered within the store timeout and margin.
async fn within_bound<T>(what: &str, request: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let answer = request.await;
    let took = started.elapsed();
    eprintln!("{what}: answered after {took:?} (store timeout {STORE_TIMEOUT:?})");
    assert!(
        took < STORE_TIMEOUT + MARGIN,
        "{what} took {took:?}, more than the store timeout {STORE_TIMEOUT:?} + {MARGIN:?}"
    );
    answer
}

/// A 503 `store_unavailable` with a `Retry-After` header.
async fn assert_store_unavailable(response: reqwest::Response) -> Value {
    assert!(
        response.headers().contains_key("retry-after"),
        "a 503 without Retry-After: {:?}",
        response.headers()
    );
    assert_error(response, 503, "store_unavailable").await
}

// ---------------------------------------------------------------------------
// Locks held from outside the broker
// ---------------------------------------------------------------------------

/// `LOCK TABLE table IN ACCESS EXCLUSIVE MODE` in a second PostgreSQL
/// session, released (rolled back) by itself after `hold`, whatever the
/// test is waiting for meanwhile (a broker that waits out the lock).
struct PostgresLock {
    released: tokio::task::JoinHandle<tokio_postgres::Client>,
}

impl PostgresLock {
    async fn take(db: &TestDb, table: &str, hold: Duration) -> Self {
        let (client, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
            .await
            .expect("a second session on the test database");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
            .batch_execute(&format!(
                "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
            ))
            .await
            .expect("the lock is taken");
        let released = tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            client
                .batch_execute("ROLLBACK")
                .await
                .expect("the lock is released");
            client
        });
        Self { released }
    }

    /// Waits until the lock is released; returns the session for queries
    /// of its own.
    async fn release(self) -> tokio_postgres::Client {
        self.released.await.expect("the lock holder ended")
    }
}

/// Another connection to the broker's SQLite file holds its write lock
/// (`BEGIN IMMEDIATE`, as a backup tool or the `sqlite3` shell would) until
/// `hold` has passed.
pub(crate) struct SqliteWriterLock {
    released: tokio::task::JoinHandle<()>,
}

impl SqliteWriterLock {
    pub(crate) async fn take(app: &TestApp, hold: Duration) -> Self {
        let path = sqlite_path(app);
        let (taken, is_taken) = oneshot::channel();
        let released = tokio::task::spawn_blocking(move || {
            let mut connection = crate::helpers::outside_sqlite(&path);
            connection
                .batch_execute("BEGIN IMMEDIATE")
                .expect("the write lock is taken");
            let _ = taken.send(());
            std::thread::sleep(hold);
            connection
                .batch_execute("ROLLBACK")
                .expect("the write lock is released");
        });
        is_taken.await.expect("the lock holder started");
        Self { released }
    }

    pub(crate) async fn release(self) {
        self.released.await.expect("the lock holder ended");
    }
}

fn sqlite_path(app: &TestApp) -> String {
    match &app.settings.database {
        DatabaseUrl::Sqlite { path } => path.to_string_lossy().into_owned(),
        other => panic!("not an SQLite broker: {other:?}"),
    }
}

/// A resume opened now: either the open answers 503, or the stream opens
/// and ends (closed `store_unavailable`) without replaying anything.
async fn assert_resume_fails_fast(app: &TestApp, after: i64) {
    let last_event_id = after.to_string();
    within_bound("a resume with Last-Event-ID", async {
        let response = app
            .stream_response("/sse/events", &[("Last-Event-ID", &last_event_id)])
            .await;
        if response.status().as_u16() == 503 {
            assert_store_unavailable(response).await;
            return;
        }
        assert_eq!(response.status().as_u16(), 200);
        let mut stream = crate::helpers::EventStream::new(response);
        let events = stream.read_to_end(STORE_TIMEOUT + MARGIN).await;
        assert!(
            events.iter().all(|e| e.id_number().is_none()),
            "a replay under the lock delivered {events:?}"
        );
        assert!(stream.end().is_some());
    })
    .await;
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn a_locked_events_table_refuses_publishes_history_and_resumes_within_the_store_timeout() {
    // Arrange: a broker on PostgreSQL, a live stream, one stored event; the
    // replay cache off, so the resume below needs the store.
    let db = TestDb::create().await;
    let app = spawn_app_with(|s| {
        s.database = db.database_url();
        s.store_timeout = STORE_TIMEOUT;
        s.replay_cache_events = 0;
    })
    .await;
    let mut live = app.open_stream("/sse/events", &[]).await;
    let before = app.publish_one(&event("before")).await;
    assert_eq!(
        live.take_messages(1, SHORT).await[0].id_number(),
        Some(before)
    );

    // Act: another session locks `events` for 6 s.
    let lock = PostgresLock::take(&db, "events", LOCK_HOLD).await;

    // Assert: a publish is refused within the store timeout...
    let refused = within_bound("a publish under the lock", app.publish(&event("refused"))).await;
    assert_store_unavailable(refused).await;
    // ...so are a history read and a resume...
    let history = within_bound("/sse/history under the lock", app.get("/sse/history")).await;
    assert_store_unavailable(history).await;
    assert_resume_fails_fast(&app, before - 1).await;
    // ...and /health says so while the lock lasts, though `SELECT 1` works.
    let (status, body) = within_bound("/health under the lock", health(&app)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert!(has_alert(&body, "store_failing"), "{body}");
    assert_eq!(body["checks"]["store"]["status"], "failing", "{body}");
    assert_eq!(
        body["checks"]["store"]["writes"]["last_failure"]["kind"], "timeout",
        "{body}"
    );
    assert!(
        metric(
            &app,
            "sse_store_errors_total",
            &[("operation", "insert_batch"), ("kind", "timeout")]
        )
        .await
        .is_some_and(|n| n >= 1.0),
        "no store timeout counted"
    );

    // Act 2: the lock goes away.
    let session = lock.release().await;

    // Assert 2: publishing works again, and the refused event was not
    // stored behind the publisher's back, nor delivered.
    let after = app.publish_one(&event("after")).await;
    assert!(after > before);
    // Healthy again with no client reading: the publish clears the failed
    // writes, the broker's own probe (every 5 s) the failed reads.
    wait_for_health(&app, SAMPLED, "healthy again", |status, body| {
        status == 200 && body["status"] == "healthy" && body["checks"]["store"]["status"] == "ok"
    })
    .await;
    assert_eq!(stored_markers(&app).await, ["before", "after"]);
    let refused_rows: i64 = session
        .query_one(
            "SELECT count(*) FROM events WHERE data LIKE '%refused%'",
            &[],
        )
        .await
        .expect("count the refused event")
        .get(0);
    assert_eq!(refused_rows, 0, "the refused publish was stored later");
    let delivered = live.take_messages(1, SHORT).await;
    assert_eq!(delivered[0].id_number(), Some(after), "{delivered:?}");
    assert_eq!(delivered[0].json()["marker"], "after");
    live.assert_quiet(Duration::from_millis(300)).await;
}

#[actix_web::test]
async fn an_upload_whose_write_the_store_refuses_says_the_lines_before_it_are_applied() {
    // Arrange: an upload on PostgreSQL with one line applied.
    let db = TestDb::create().await;
    let app = spawn_app_with(|s| {
        s.database = db.database_url();
        s.store_timeout = STORE_TIMEOUT;
    })
    .await;
    crate::generations::create(&app, "mid-upload").await;
    let upload = crate::generations::Upload::start(&app, "mid-upload", "application/x-ndjson");
    upload.send("{\"delta\": \"stored \"}\n").await;
    eventually(SHORT, "the first line applied", || async {
        let task = app.get_json("/tasks/mid-upload").await;
        (task["status"] == "running").then_some(())
    })
    .await;

    // Act: the next line's write meets a locked events table.
    let lock = PostgresLock::take(&db, "events", LOCK_HOLD).await;
    upload.send("{\"delta\": \"refused\"}\n").await;
    let answer = within_bound("the upload's answer", upload.finish()).await;

    // Assert: 503, saying what a producer must do, not "nothing was published".
    let body = assert_store_unavailable(answer).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the lines before this write are applied")
            && message.contains("seq")
            && !message.contains("nothing was"),
        "{message}"
    );
    lock.release().await;
}

#[actix_web::test]
async fn a_task_write_under_a_locked_tasks_table_is_refused_and_not_applied_later() {
    // Arrange
    let db = TestDb::create().await;
    let app = spawn_app_with(|s| {
        s.database = db.database_url();
        s.store_timeout = STORE_TIMEOUT;
    })
    .await;
    let lock = PostgresLock::take(&db, "tasks", LOCK_HOLD).await;

    // Act
    let refused = within_bound(
        "POST /tasks under the lock",
        app.post_json("/tasks", &json!({"task_id": "refused-task"})),
    )
    .await;

    // Assert: refused now, absent once the lock is gone, creatable then.
    assert_store_unavailable(refused).await;
    lock.release().await;
    tokio::time::sleep(STORE_TIMEOUT).await;
    assert_eq!(app.get("/tasks/refused-task").await.status().as_u16(), 404);
    let created = app
        .post_json("/tasks", &json!({"task_id": "refused-task"}))
        .await;
    assert_eq!(created.status().as_u16(), 201);
}

#[actix_web::test]
async fn a_commit_under_way_at_the_timeout_is_reported_stored_and_the_queue_behind_it_refused() {
    // Arrange: every insert into `events` takes 0.7 s, and so does every
    // COMMIT that follows one (a deferred constraint trigger runs at
    // COMMIT): a publish's commit begins within its 1 s and ends after it.
    let db = TestDb::create().await;
    let app = spawn_app_with(|s| {
        s.database = db.database_url();
        s.store_timeout = STORE_TIMEOUT;
    })
    .await;
    let (admin, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("a second session on the test database");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    admin
        .batch_execute(
            "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN PERFORM pg_sleep(0.7); RETURN NEW; END $$; \
             CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN PERFORM pg_sleep(0.7); RETURN NULL; END $$; \
             CREATE TRIGGER slow_insert BEFORE INSERT ON events \
               FOR EACH ROW EXECUTE FUNCTION slow_insert(); \
             CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON events \
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
        )
        .await
        .expect("the triggers are created");
    let mut live = app.open_stream("/sse/events", &[]).await;

    // Act: one publish starts a commit; a second one queues behind it.
    let first = async {
        let started = Instant::now();
        let response = app.publish(&event("committed")).await;
        (response, started.elapsed())
    };
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        within_bound(
            "a publish queued behind a slow commit",
            app.publish(&event("queued")),
        )
        .await
    };
    let ((first, first_took), second) = futures_util::future::join(first, second).await;

    // Assert: the first was stored, after its timeout, and says so (202,
    // delivered); the second was refused within its own timeout and never
    // stored.
    eprintln!("a commit under way at the timeout: answered after {first_took:?}");
    assert_eq!(first.status().as_u16(), 202, "{:?}", first.text().await);
    assert!(
        first_took >= STORE_TIMEOUT,
        "the commit ended within the timeout ({first_took:?}): nothing was tested"
    );
    assert_store_unavailable(second).await;
    let delivered = live.take_messages(1, SHORT).await;
    assert_eq!(delivered[0].json()["marker"], "committed", "{delivered:?}");
    tokio::time::sleep(STORE_TIMEOUT).await;
    assert_eq!(stored_markers(&app).await, ["committed"]);
    live.assert_quiet(Duration::from_millis(300)).await;
}

/// A commit that outlasts the Persister's patience (its deadline and one
/// more store timeout): the publisher hears 503 `store_outcome_unknown`,
/// the store error is counted as `unconfirmed`, and once the commit ends
/// its outcome is logged for the operator to reconcile, the event
/// delivered if stored and a retry with the same key given its id.
#[actix_web::test]
async fn a_commit_confirmed_after_its_publisher_was_answered_is_counted_and_its_outcome_logged() {
    // Arrange: a broker process (its log is read) whose COMMITs of events
    // take 3 s (a deferred constraint trigger runs at COMMIT).
    let db = TestDb::create().await;
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let mut broker = BrokerProcess::spawn_on_store_with(
        &db.url(),
        scratch.path().join("broker.log"),
        &["--store-timeout-ms", &STORE_TIMEOUT.as_millis().to_string()],
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    broker.wait_until_ready(&client).await;
    let (admin, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("a second session on the test database");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    admin
        .batch_execute(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$; \
             CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON events \
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
        )
        .await
        .expect("the trigger is created");
    let publish = || {
        client
            .post(format!("{}/sse/publish", broker.address))
            .json(&json!({"event_type": "system_status", "data": {"marker": "late"}, "idempotency_key": "late-1"}))
            .send()
    };

    // Act
    let answered = publish().await.expect("the publish is answered");

    // Assert: unknown to the publisher, counted, then the outcome logged.
    assert_error(answered, 503, "store_outcome_unknown").await;
    let metrics = client
        .get(format!("{}/metrics", broker.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let unconfirmed = labelled_sum(
        &metrics,
        "sse_store_errors_total",
        &[("operation", "insert_batch"), ("kind", "unconfirmed")],
    );
    assert_eq!(unconfirmed, 1.0, "counted once");
    let outcome = eventually(
        Duration::from_secs(15),
        "the commit's outcome in the log",
        || async {
            let logs = broker.logs();
            if logs.contains("a store commit reported as unconfirmed did commit") {
                Some(true)
            } else if logs.contains("a store commit reported as unconfirmed did not commit") {
                Some(false)
            } else {
                None
            }
        },
    )
    .await;
    admin
        .batch_execute("DROP TRIGGER slow_commit ON events")
        .await
        .expect("dropped");
    let retried = publish().await.expect("the retry is answered");
    assert_eq!(retried.status().as_u16(), 202);
    let retried: Value = retried.json().await.expect("ids");
    let stored = client
        .get(format!("{}/sse/history?limit=10", broker.address))
        .send()
        .await
        .expect("history")
        .json::<Value>()
        .await
        .expect("a page");
    let ids: Vec<_> = stored["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [retried["ids"][0].clone()],
        "one event, whichever way the commit went: {stored}"
    );
    if outcome {
        let line = broker
            .logs()
            .lines()
            .find(|l| l.contains("did commit"))
            .unwrap_or_default()
            .to_owned();
        assert!(
            line.contains(&format!("first_id={}", retried["ids"][0])),
            "{line}"
        );
    }
}

// ---------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn a_publish_behind_another_sqlite_writer_is_refused_within_the_timeout_and_rolled_back() {
    // Arrange
    let app = spawn_app_with(|s| s.store_timeout = STORE_TIMEOUT).await;
    let mut live: OpenStream = app.open_stream("/sse/events", &[]).await;
    let before = app.publish_one(&event("before")).await;
    live.take_messages(1, SHORT).await;

    // Act: another connection holds the write lock for 6 s.
    let lock = SqliteWriterLock::take(&app, LOCK_HOLD).await;
    let refused = within_bound(
        "a publish behind the writer",
        app.publish(&event("refused")),
    )
    .await;

    // Assert: refused within the timeout, /health says the writes fail.
    assert_store_unavailable(refused).await;
    let body = wait_for_health(
        &app,
        SHORT,
        "unhealthy with failing writes",
        |status, body| status == 503 && has_alert(body, "store_failing"),
    )
    .await;
    assert_eq!(
        body["checks"]["store"]["writes"]["status"], "failing",
        "{body}"
    );

    // Act 2: the lock is released.
    lock.release().await;

    // Assert 2: back in a load balancer's rotation (200) within seconds,
    // with no client's write (the broker's own test write proves it);
    // never stored, never delivered; publishing works again.
    // (The probe is trusted 5 s after the last failure; it was 30 s.)
    let body = wait_for_health(
        &app,
        Duration::from_secs(12),
        "200 without a client's write",
        |status, body| status == 200 && body["status"] != "unhealthy",
    )
    .await;
    assert_eq!(
        body["status"], "degraded",
        "healthy at the next write: {body}"
    );
    let after = app.publish_one(&event("after")).await;
    assert!(after > before);
    assert_eq!(stored_markers(&app).await, ["before", "after"]);
    let delivered = live.take_messages(1, SHORT).await;
    assert_eq!(delivered[0].json()["marker"], "after", "{delivered:?}");
    live.assert_quiet(Duration::from_millis(300)).await;
    wait_for_health(&app, SHORT, "healthy again", |status, body| {
        status == 200 && body["status"] == "healthy"
    })
    .await;
}

#[actix_web::test]
async fn sqlite_writes_that_fail_make_health_unhealthy_until_a_write_succeeds() {
    // Arrange: a healthy broker, then triggers in its SQLite file that
    // refuse every insert into `events` and `broker_state` (which the
    // broker's own test write uses), as a full disk would.
    let app = spawn_app_with(|s| s.store_timeout = STORE_TIMEOUT).await;
    app.publish_one(&event("before")).await;
    let (status, body) = health(&app).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("healthy")),
        "{body}"
    );
    let mut outside = crate::helpers::outside_sqlite(&sqlite_path(&app));
    outside
        .batch_execute(
            "CREATE TRIGGER refuse_events BEFORE INSERT ON events \
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END; \
             CREATE TRIGGER refuse_state BEFORE INSERT ON broker_state \
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
        )
        .expect("the triggers are created");

    // Act
    let refused = app.publish(&event("refused")).await;

    // Assert: 503, and /health 503 unhealthy, store `failing` although it
    // answers a round trip.
    assert_store_unavailable(refused).await;
    let (status, body) = health(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert!(has_alert(&body, "store_failing"), "{body}");
    let store = &body["checks"]["store"];
    assert_eq!(store["status"], "failing", "{body}");
    assert_eq!(store["writes"]["last_failure"]["operation"], "insert_batch");
    assert_eq!(store["writes"]["last_failure"]["kind"], "error");
    assert_eq!(store["reads"]["status"], "ok", "{body}");
    assert!(
        metric(
            &app,
            "sse_store_errors_total",
            &[("operation", "insert_batch"), ("kind", "error")]
        )
        .await
        .is_some_and(|n| n >= 1.0)
    );
    // The gauge the alert rules read (sampled every 5 s) agrees.
    eventually(Duration::from_secs(12), "sse_store_failing 1", || async {
        metric(&app, "sse_store_failing", &[("kind", "write")])
            .await
            .filter(|v| *v == 1.0)
    })
    .await;

    // Act 2: the cause goes away; the next write succeeds.
    outside
        .batch_execute("DROP TRIGGER refuse_events; DROP TRIGGER refuse_state")
        .expect("the triggers are dropped");
    app.publish_one(&event("after")).await;

    // Assert 2: healthy again, and the gauge agrees.
    let (status, body) = health(&app).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("healthy")),
        "{body}"
    );
    assert_eq!(stored_markers(&app).await, ["before", "after"]);
    eventually(
        Duration::from_secs(12),
        "sse_store_failing back to 0",
        || async {
            metric(&app, "sse_store_failing", &[("kind", "write")])
                .await
                .filter(|v| *v == 0.0)
        },
    )
    .await;
}

#[actix_web::test]
async fn a_resume_within_the_replay_cache_is_served_while_the_store_is_locked() {
    // Arrange: a broker on PostgreSQL with its replay cache on (the default),
    // three stored events.
    let db = TestDb::create().await;
    let app = spawn_app_with(|s| {
        s.database = db.database_url();
        s.store_timeout = STORE_TIMEOUT;
    })
    .await;
    let mut ids = Vec::new();
    for marker in ["one", "two", "three"] {
        ids.push(app.publish_one(&event(marker)).await);
    }

    // Act: another session locks `events`; a client resumes after the first.
    let lock = PostgresLock::take(&db, "events", LOCK_HOLD).await;
    let resumed = within_bound("a resume from memory under the lock", async {
        let mut stream = app
            .open_stream("/sse/events", &[("Last-Event-ID", &ids[0].to_string())])
            .await;
        stream.take_messages(2, SHORT).await
    })
    .await;

    // Assert: it got what it missed from memory, exactly, while the store
    // could not have answered.
    let got: Vec<Option<i64>> = resumed.iter().map(|e| e.id_number()).collect();
    assert_eq!(got, [Some(ids[1]), Some(ids[2])]);
    assert_eq!(resumed[0].json()["marker"], "two");
    lock.release().await;
}

/// Writes the store refuses while the broker's small test write and the
/// retention prune (which deletes nothing) pass, as on a nearly full disk:
/// under traffic the instance stays unhealthy; without it, degraded at
/// most, never healthy until a real write succeeds (a prune that deleted
/// nothing made it healthy, and it flapped between 503 and 200).
#[actix_web::test]
async fn writes_refused_while_small_writes_pass_never_look_healthy() {
    // Arrange: prunes every second.
    let app = spawn_app_with(|s| {
        s.store_timeout = STORE_TIMEOUT;
        s.retention = Duration::from_secs(10);
    })
    .await;
    app.publish_one(&event("before")).await;
    let mut outside = crate::helpers::outside_sqlite(&sqlite_path(&app));
    outside
        .batch_execute(
            "CREATE TRIGGER refuse_events BEFORE INSERT ON events \
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
        )
        .expect("the trigger is created");

    // Act and assert: a publish every 2 s for 8 s; /health never 200.
    for _ in 0..4 {
        assert_store_unavailable(app.publish(&event("refused")).await).await;
        for _ in 0..4 {
            let (status, body) = health(&app).await;
            assert_eq!(status, 503, "under refused traffic: {body}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // Without traffic: degraded once the probe is trusted, never healthy.
    wait_for_health(&app, Duration::from_secs(10), "degraded", |status, body| {
        status == 200 && body["status"] == "degraded"
    })
    .await;
    for _ in 0..6 {
        let (_, body) = health(&app).await;
        assert_ne!(body["status"], "healthy", "{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[actix_web::test]
async fn the_health_gauges_follow_a_failing_store_within_their_period_while_probes_wait() {
    // Arrange: a store timeout long enough that the sampler's own probe of
    // the writes waits most of a gauge period each time (as on a
    // PostgreSQL table lock or a partition).
    let app = spawn_app_with(|s| s.store_timeout = Duration::from_millis(4500)).await;
    let lock = SqliteWriterLock::take(&app, Duration::from_secs(15)).await;

    // Act
    assert_store_unavailable(app.publish(&event("refused")).await).await;
    let refused_at = std::time::Instant::now();

    // Assert: the gauges the alert rules read say so within their 5 s
    // period, as /health does at once (they lagged 15-20 s, and could miss
    // the whole outage, when published only after a census came back).
    eventually(
        Duration::from_secs(7),
        "sse_store_failing{kind=write} 1",
        || async {
            metric(&app, "sse_store_failing", &[("kind", "write")])
                .await
                .filter(|v| *v == 1.0)
        },
    )
    .await;
    assert_eq!(metric(&app, "sse_health_status", &[]).await, Some(2.0));
    assert!(
        refused_at.elapsed() < Duration::from_secs(7),
        "{:?}",
        refused_at.elapsed()
    );
    lock.release().await;
}
