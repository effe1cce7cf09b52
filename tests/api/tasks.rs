//! The task API over HTTP: a task's life and every write it refuses, task
//! ids, the orphan timeout, and task streams: a resume mid-generation, a page
//! opened mid-generation, and the stream of a finished task.

use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::helpers::{
    LONG, OpenStream, SHORT, SseEvent, StreamEnd, TestApp, assert_error, eventually, spawn_app,
    spawn_app_with,
};

// ---------------------------------------------------------------------------
// Helpers of this file
// ---------------------------------------------------------------------------

/// One request of the task API, against any id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Get,
    Head,
    Events,
    Patch,
    Text,
    Complete,
    Fail,
    Cancel,
}

/// Every request that takes a task id.
const CALLS: [Call; 8] = [
    Call::Get,
    Call::Head,
    Call::Events,
    Call::Patch,
    Call::Text,
    Call::Complete,
    Call::Fail,
    Call::Cancel,
];

/// Every producer write.
const WRITES: [Call; 5] = [
    Call::Patch,
    Call::Text,
    Call::Complete,
    Call::Fail,
    Call::Cancel,
];

/// Sends `call` for the task `id` (as written into the path) with a valid body.
async fn call(app: &TestApp, id: &str, call: Call) -> reqwest::Response {
    let client = &app.api_client;
    let url = |suffix: &str| app.url(&format!("/tasks/{id}{suffix}"));
    let request = match call {
        Call::Get => client.get(url("")),
        Call::Head => client.head(url("")),
        Call::Events => client.get(url("/events")),
        Call::Patch => client
            .patch(url(""))
            .json(&json!({"progress": 100, "message": "late"})),
        Call::Text => client.post(url("/text")).json(&json!({"delta": "late"})),
        Call::Complete => client
            .post(url("/complete"))
            .json(&json!({"result": "late"})),
        Call::Fail => client.post(url("/fail")).json(&json!({"error": "late"})),
        Call::Cancel => client.post(url("/cancel")),
    };
    request.send().await.expect("request sent")
}

/// Asserts `response` refuses `what` with `status` and `code` (HEAD: the
/// status only, it has no body).
async fn assert_refused(response: reqwest::Response, what: Call, status: u16, code: &str) {
    if what == Call::Head {
        assert_eq!(response.status().as_u16(), status, "HEAD");
    } else {
        assert_error(response, status, code).await;
    }
}

/// The body of `response` as JSON, asserting its status.
async fn expect_json(response: reqwest::Response, status: u16, what: &str) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("a response body");
    assert_eq!(actual, status, "{what} answered {actual}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"))
}

/// `POST /tasks` with `body`, asserting 201; returns the task.
async fn create_task(app: &TestApp, body: &Value) -> Value {
    expect_json(app.post_json("/tasks", body).await, 201, "POST /tasks").await
}

async fn patch(app: &TestApp, id: &str, body: &Value) -> reqwest::Response {
    app.api_client
        .patch(app.url(&format!("/tasks/{id}")))
        .json(body)
        .send()
        .await
        .expect("PATCH sent")
}

/// `PATCH /tasks/{id}`, asserting 200; returns the task.
async fn patch_ok(app: &TestApp, id: &str, body: &Value) -> Value {
    expect_json(patch(app, id, body).await, 200, &format!("PATCH {body}")).await
}

/// `X-Task-Status` and `X-Task-Progress` of `HEAD /tasks/{id}`, asserting 200.
async fn head_ok(app: &TestApp, id: &str) -> (String, String) {
    let response = call(app, id, Call::Head).await;
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .expect("an ASCII header")
            .to_owned()
    };
    (header("X-Task-Status"), header("X-Task-Progress"))
}

/// Posts `deltas` in one request (`delta` for one, `deltas` for several),
/// asserting 202; returns the ids of their `text` events.
async fn post_text(app: &TestApp, id: &str, deltas: &[String]) -> Vec<i64> {
    let body = match deltas {
        [one] => json!({ "delta": one }),
        many => json!({ "deltas": many }),
    };
    let path = format!("/tasks/{id}/text");
    let answer = expect_json(app.post_json(&path, &body).await, 202, &path).await;
    let ids: Vec<i64> = answer["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids in {answer}"))
        .iter()
        .map(|id| {
            id.as_i64()
                .unwrap_or_else(|| panic!("a text event is stored: {answer}"))
        })
        .collect();
    assert_eq!(ids.len(), deltas.len(), "one id per delta: {answer}");
    ids
}

/// How a producer ends a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    Complete,
    Fail,
    Cancel,
}

impl Finish {
    const ALL: [Self; 3] = [Self::Complete, Self::Fail, Self::Cancel];

    /// Ends the task, asserting 200; returns the task.
    async fn apply(self, app: &TestApp, id: &str) -> Value {
        let (path, body) = match self {
            Self::Complete => ("complete", json!({"result": {"text": "done"}})),
            Self::Fail => ("fail", json!({"error": "model overloaded"})),
            Self::Cancel => ("cancel", Value::Null),
        };
        let path = format!("/tasks/{id}/{path}");
        let response = if body.is_null() {
            app.post_raw(&path, "", None).await
        } else {
            app.post_json(&path, &body).await
        };
        let task = expect_json(response, 200, &path).await;
        let (status, progress) = match self {
            Self::Complete => ("completed", Some(100.0)),
            Self::Fail => ("failed", None),
            Self::Cancel => ("cancelled", None),
        };
        assert_eq!(task["status"], status, "{task}");
        if let Some(progress) = progress {
            assert_eq!(task["progress"].as_f64(), Some(progress), "{task}");
        }
        task
    }

    /// Checks the task's last event: its type and data.
    fn assert_last_event(self, event: &SseEvent, id: &str) {
        let data = event.json();
        assert_eq!(data["task_id"], id, "{event:?}");
        match self {
            Self::Complete => {
                assert!(event.is("complete"), "{event:?}");
                assert_eq!(data["status"], "completed", "{event:?}");
                assert_eq!(data["result"], json!({"text": "done"}), "{event:?}");
            }
            Self::Fail => {
                assert!(event.is("error"), "{event:?}");
                assert_eq!(data["status"], "failed", "{event:?}");
                assert_eq!(data["error"], "model overloaded", "{event:?}");
            }
            Self::Cancel => {
                assert!(event.is("error"), "{event:?}");
                assert_eq!(data["status"], "cancelled", "{event:?}");
                assert_eq!(data["cancelled"], true, "{event:?}");
            }
        }
    }

    /// The code of a write refused after this ending.
    fn refusal(self) -> &'static str {
        match self {
            Self::Cancel => "task_cancelled",
            Self::Complete | Self::Fail => "task_finished",
        }
    }
}

/// A task stream past its `connected` frame and its opening `progress`.
struct TaskStream {
    stream: OpenStream,
    /// The task as the stream opened (the data of the opening `progress`).
    opening: Value,
    /// The text the stream missed (all of it on a first connect), rolled up
    /// into one `text` event under the id of the last missed one.
    caught_up: Option<SseEvent>,
}

/// Opens `/tasks/{id}/events` (resuming after `last_event_id` if given),
/// asserting the first frames (CONTRACT §7): `connected`, at most one
/// `text` event with an id carrying every missed delta, then `progress`
/// without an id carrying the task.
async fn open_task_stream(app: &TestApp, id: &str, last_event_id: Option<i64>) -> TaskStream {
    let last = last_event_id.map(|last| last.to_string());
    let headers: Vec<(&str, &str)> = last
        .as_deref()
        .map(|last| ("Last-Event-ID", last))
        .into_iter()
        .collect();
    let mut stream = app
        .open_stream(&format!("/tasks/{id}/events"), &headers)
        .await;
    let mut opening = next_opening_frame(&mut stream, id).await;
    let mut caught_up = None;
    if opening.is("text") {
        assert!(
            opening.id.is_some(),
            "the rolled-up text has an id: {opening:?}"
        );
        caught_up = Some(opening);
        opening = next_opening_frame(&mut stream, id).await;
    }
    assert!(opening.is("progress"), "the opening state is {opening:?}");
    assert_eq!(opening.id, None, "the opening state is no stored event");
    let opening = opening.json();
    assert_eq!(opening["task_id"], id, "{opening}");
    TaskStream {
        stream,
        opening,
        caught_up,
    }
}

async fn next_opening_frame(stream: &mut OpenStream, id: &str) -> SseEvent {
    stream
        .next_message(SHORT)
        .await
        .unwrap_or_else(|| panic!("no opening progress on {id}'s stream: {:?}", stream.end()))
}

/// Consecutive repeats removed: `/text` answers, per delta, the id of the
/// event it went into, and deltas of one request share one.
fn distinct(ids: &[i64]) -> Vec<i64> {
    let mut ids = ids.to_vec();
    ids.dedup();
    ids
}

/// The text of `deltas` joined: what a reader must have read through them.
fn chars(deltas: &[String]) -> usize {
    deltas.iter().map(String::len).sum()
}

/// The events that are not heartbeats.
fn messages(events: Vec<SseEvent>) -> Vec<SseEvent> {
    events.into_iter().filter(|e| !e.is_heartbeat()).collect()
}

/// The ids of `events`, asserting each has one.
fn ids(events: &[SseEvent]) -> Vec<i64> {
    events
        .iter()
        .map(|e| {
            e.id_number()
                .unwrap_or_else(|| panic!("a task event without id: {e:?}"))
        })
        .collect()
}

/// The deltas of the `text` events among `events`, joined.
fn text_of(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.is("text"))
        .map(|e| {
            e.json()["delta"]
                .as_str()
                .unwrap_or_else(|| panic!("a text event without delta: {e:?}"))
                .to_owned()
        })
        .collect()
}

fn assert_increasing(ids: &[i64], what: &str) {
    if let Some(w) = ids.windows(2).find(|w| w[0] >= w[1]) {
        panic!(
            "{what}: ids not strictly increasing ({} then {})",
            w[0], w[1]
        );
    }
}

/// Every event is one of the task's own: a task type, carrying its id.
fn assert_only_task(events: &[SseEvent], id: &str) {
    for event in events {
        assert!(
            matches!(
                event.event.as_deref(),
                Some("progress" | "text" | "complete" | "error")
            ),
            "a foreign type on {id}'s stream: {event:?}"
        );
        assert_eq!(
            event.json()["task_id"],
            id,
            "another task's event leaked into {id}'s stream: {event:?}"
        );
    }
}

/// `count` deltas of generated text: words, with LF, CRLF, non-ASCII and
/// SSE-looking text mixed in, so any damage by the framing shows.
fn generated_deltas(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match i % 10 {
            3 => format!("line{i}\n"),
            5 => format!("crlf{i}\r\n"),
            7 => format!("é{i}✓ "),
            9 => format!("data: {i}\n\nid: 0\n"),
            _ => format!("w{i} "),
        })
        .collect()
}

/// Request sizes of a producer, cycled: single `delta`s and `deltas` batches.
const BATCH_SIZES: [usize; 8] = [1, 4, 1, 1, 9, 2, 1, 16];

/// Holds a producer before it posts delta `at` until `counter` reaches `value`.
struct Gate<'a> {
    at: usize,
    counter: &'a AtomicUsize,
    value: usize,
}

/// Posts `deltas` to task `id` in requests of [`BATCH_SIZES`], honouring
/// `gates`; `posted` counts the deltas posted so far (from `first`). Returns
/// the ids, in order.
async fn produce(
    app: &TestApp,
    id: &str,
    deltas: &[String],
    first: usize,
    gates: &[Gate<'_>],
    posted: &AtomicUsize,
) -> Vec<i64> {
    let mut ids = Vec::with_capacity(deltas.len());
    let mut next = 0;
    for size in BATCH_SIZES.iter().cycle() {
        if next == deltas.len() {
            break;
        }
        let end = (next + size).min(deltas.len());
        for gate in gates.iter().filter(|g| first + end > g.at) {
            eventually(LONG, "a reader the producer waits for", || async {
                (gate.counter.load(Ordering::SeqCst) >= gate.value).then_some(())
            })
            .await;
        }
        ids.extend(post_text(app, id, &deltas[next..end]).await);
        next = end;
        posted.store(first + next, Ordering::SeqCst);
        // A little pacing, so the readers interleave with the producer.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    ids
}

/// Until `stop`, publishes events of no task under test: the deltas of task
/// `other`, and `text`/`progress`/`commit` events of no task. Returns how
/// many rounds it published.
async fn publish_noise(app: &TestApp, other: &str, stop: &AtomicBool) -> usize {
    let mut rounds = 0;
    while !stop.load(Ordering::SeqCst) {
        post_text(app, other, &[format!("LEAK{rounds} ")]).await;
        app.publish_ok(&json!([
            {"event_type": "text", "data": {"delta": "LEAK"}},
            {"event_type": "progress", "data": {"progress": 50}},
            {"event_type": "commit", "data": {"n": rounds}},
        ]))
        .await;
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    rounds
}

/// Reads messages until `already` plus the text read reaches `length`
/// bytes; returns them all.
async fn read_text_until(stream: &mut OpenStream, already: usize, length: usize) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut read = already;
    while read < length {
        let event = stream.next_message(LONG).await.unwrap_or_else(|| {
            panic!(
                "{read} of {length} bytes of text, then nothing (end: {:?})",
                stream.end()
            )
        });
        read += text_of(std::slice::from_ref(&event)).len();
        events.push(event);
    }
    events
}

// ---------------------------------------------------------------------------
// A task's life
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn a_task_runs_from_pending_to_completed_and_its_stream_shows_every_change() {
    // Arrange: a new task and a stream on it.
    let app = spawn_app().await;
    let created = create_task(
        &app,
        &json!({"task_id": "t-1", "stage": "queued", "message": "waiting"}),
    )
    .await;
    assert_eq!(created["task_id"], "t-1");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["progress"].as_f64(), Some(0.0));
    assert_eq!(created["stage"], "queued");
    assert_eq!(created["message"], "waiting");
    assert_eq!(created["result"], Value::Null);
    assert_eq!(created["error"], Value::Null);
    for stamp in ["created_at", "updated_at"] {
        let raw = created[stamp].as_str().expect("a timestamp string");
        assert!(
            chrono::DateTime::parse_from_rfc3339(raw).is_ok(),
            "{stamp}: {raw}"
        );
    }
    assert_eq!(app.get_json("/tasks/t-1").await, created);
    assert_eq!(head_ok(&app, "t-1").await, ("pending".into(), "0".into()));
    // HEAD says what GET's headers say, its body left out.
    let (get, head) = (
        call(&app, "t-1", Call::Get).await,
        call(&app, "t-1", Call::Head).await,
    );
    for name in ["content-length", "content-type"] {
        assert_eq!(get.headers().get(name), head.headers().get(name), "{name}");
    }
    assert!(head.bytes().await.expect("no body").is_empty());
    let mut watcher = open_task_stream(&app, "t-1", None).await;
    assert_eq!(watcher.opening, created);
    let mut types: Vec<String> = watcher.stream.connected.json()["event_types"]
        .as_array()
        .expect("event_types")
        .iter()
        .map(|t| t.as_str().expect("a type").to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "complete",
            "custom_part",
            "data_part",
            "error",
            "file",
            "message_metadata",
            "progress",
            "reasoning",
            "reasoning_end",
            "source",
            "steering_message",
            "step_end",
            "text",
            "text_end",
            "tool_approval",
            "tool_call",
            "tool_result"
        ]
    );

    // Act: the producer's whole life, with a refused backwards step.
    let mut patched = Vec::new();
    let running = patch_ok(&app, "t-1", &json!({"progress": 10, "stage": "thinking"})).await;
    assert_eq!(
        running["status"], "running",
        "reporting progress starts the task"
    );
    assert_eq!(running["progress"].as_f64(), Some(10.0));
    assert_eq!(running["stage"], "thinking");
    assert_eq!(running["message"], "waiting", "absent fields are kept");
    patched.push(running);
    let backwards = assert_error(
        patch(&app, "t-1", &json!({"progress": 5})).await,
        422,
        "invalid_field",
    )
    .await;
    assert!(
        backwards["error"]["message"]
            .as_str()
            .unwrap()
            .contains("force"),
        "the refusal names the way out: {backwards}"
    );
    let forced = patch_ok(&app, "t-1", &json!({"progress": 5, "force": true})).await;
    assert_eq!(forced["progress"].as_f64(), Some(5.0));
    patched.push(forced);
    let same = patch_ok(&app, "t-1", &json!({"progress": 5, "message": "still 5"})).await;
    assert_eq!(
        same["message"], "still 5",
        "equal progress is not backwards"
    );
    patched.push(same);
    assert_eq!(head_ok(&app, "t-1").await, ("running".into(), "5".into()));
    let mut text_ids = post_text(&app, "t-1", &["Hel".into()]).await;
    text_ids.extend(post_text(&app, "t-1", &["lo".into(), " world".into()]).await);
    let completed = Finish::Complete.apply(&app, "t-1").await;

    // Assert: the task, and one event per change, in order, then the end.
    assert_eq!(completed["result"], json!({"text": "done"}));
    assert_eq!(app.get_json("/tasks/t-1").await, completed);
    assert_eq!(
        head_ok(&app, "t-1").await,
        ("completed".into(), "100".into())
    );
    let events = messages(watcher.stream.read_to_end(SHORT).await);
    assert_eq!(watcher.stream.end(), Some(&StreamEnd::Finished));
    assert_only_task(&events, "t-1");
    let seen: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    // The two deltas of the second request are one `text` event.
    assert_eq!(
        seen,
        [
            "progress", "progress", "progress", "text", "text", "complete"
        ]
    );
    for (event, task) in events.iter().zip(&patched) {
        assert_eq!(&event.json(), task, "a progress event carries the task");
    }
    assert_eq!(text_of(&events), "Hello world");
    let event_ids = ids(&events);
    assert_increasing(&event_ids, "t-1");
    assert_eq!(
        event_ids[3..5],
        distinct(&text_ids)[..],
        "/text answers the event ids"
    );
    Finish::Complete.assert_last_event(&events[5], "t-1");
}

#[actix_web::test]
async fn progress_or_text_starts_a_pending_task_and_other_fields_do_not() {
    let app = spawn_app().await;
    for id in ["by-stage", "by-progress", "by-text", "by-status"] {
        create_task(&app, &json!({ "task_id": id })).await;
    }

    let by_stage = patch_ok(&app, "by-stage", &json!({"stage": "s", "message": "m"})).await;
    let by_progress = patch_ok(&app, "by-progress", &json!({"progress": 0})).await;
    post_text(&app, "by-text", &["x".into()]).await;
    let by_status = patch_ok(&app, "by-status", &json!({"status": "running"})).await;

    assert_eq!(by_stage["status"], "pending");
    assert_eq!(by_progress["status"], "running");
    assert_eq!(app.get_json("/tasks/by-text").await["status"], "running");
    assert_eq!(by_status["status"], "running");
    assert_eq!(by_status["progress"].as_f64(), Some(0.0));
}

#[actix_web::test]
async fn invalid_writes_are_refused_with_422_and_change_nothing() {
    // Arrange: a running task at 40 %.
    let app = spawn_app().await;
    create_task(&app, &json!({"task_id": "t-bad"})).await;
    patch_ok(&app, "t-bad", &json!({"progress": 40})).await;
    let before = app.get_json("/tasks/t-bad").await;
    let patches = [
        json!({"progress": -1}),
        json!({"progress": -0.001}),
        json!({"progress": 100.5}),
        json!({"progress": 1000}),
        json!({"progress": "50"}),
        json!({"progress": true}),
        json!({"progress": [50]}),
        json!({"progress": 39.9}),
        json!({"progress": 0, "stage": "restart"}),
        json!({"status": "done"}),
        json!({"status": "Running"}),
        json!({"status": ""}),
        json!({"status": 1}),
        json!({"force": "yes"}),
    ];
    let texts = [
        json!({}),
        json!({"deltas": []}),
        json!({"delta": 5}),
        json!({"delta": null}),
        json!({"deltas": "abc"}),
        json!({"deltas": [1, 2]}),
        json!({"delta": "a", "deltas": ["b"]}),
        json!({"deltas": ["a"], "seq": 4}),
    ];

    // Act / Assert
    for body in &patches {
        assert_error(patch(&app, "t-bad", body).await, 422, "invalid_field").await;
    }
    for body in &texts {
        let response = app.post_json("/tasks/t-bad/text", body).await;
        assert_error(response, 422, "invalid_field").await;
    }
    let too_many = json!({ "deltas": vec!["a"; 1001] });
    let response = app.post_json("/tasks/t-bad/text", &too_many).await;
    assert_error(response, 413, "payload_too_large").await;
    for body in [json!({}), json!({"error": 5})] {
        let response = app.post_json("/tasks/t-bad/fail", &body).await;
        assert_error(response, 422, "invalid_field").await;
    }
    let torn = app
        .api_client
        .patch(app.url("/tasks/t-bad"))
        .header("Content-Type", "application/json")
        .body("{\"progress\": ")
        .send()
        .await
        .expect("PATCH sent");
    assert_error(torn, 400, "malformed_json").await;
    assert_eq!(
        app.get_json("/tasks/t-bad").await,
        before,
        "a refused write changes nothing, not even updated_at"
    );
    Finish::Complete.apply(&app, "t-bad").await;
    let mut stream = open_task_stream(&app, "t-bad", None).await;
    assert!(stream.caught_up.is_none(), "no text was accepted");
    assert_eq!(stream.opening["status"], "completed");
    let events = messages(stream.stream.read_to_end(SHORT).await);
    let seen: Vec<_> = events.iter().map(|e| e.event.as_deref()).collect();
    assert_eq!(
        seen,
        [Some("complete")],
        "only the valid writes left events"
    );
}

#[actix_web::test]
async fn a_finished_or_cancelled_task_refuses_every_write_with_409() {
    let app = spawn_app().await;
    for finish in Finish::ALL {
        // Arrange: a running task, ended by its producer or by a user.
        let id = format!("ended-{finish:?}");
        create_task(&app, &json!({ "task_id": id })).await;
        post_text(&app, &id, &["a".into()]).await;
        let ended = finish.apply(&app, &id).await;

        // Act / Assert: every write, including a second ending, is refused.
        for write in WRITES {
            assert_refused(call(&app, &id, write).await, write, 409, finish.refusal()).await;
        }
        assert_eq!(
            app.get_json(&format!("/tasks/{id}")).await,
            ended,
            "{finish:?}"
        );
        let mut stream = open_task_stream(&app, &id, None).await;
        let text = stream.caught_up.take().expect("the text written before");
        assert_eq!(text_of(std::slice::from_ref(&text)), "a");
        let events = messages(stream.stream.read_to_end(SHORT).await);
        assert_eq!(
            events.len(),
            1,
            "no refused write left an event: {events:?}"
        );
        finish.assert_last_event(&events[0], &id);
    }
}

#[actix_web::test]
async fn task_ids_outside_the_grammar_are_refused_and_unknown_ones_are_not_found() {
    let app = spawn_app().await;

    // Creation: a given id must follow the grammar; an absent one is generated.
    let longest = "x".repeat(128);
    for id in ["a b", "x/y", "", "é", "a.b", &"x".repeat(129)] {
        let response = app.post_json("/tasks", &json!({ "task_id": id })).await;
        assert_error(response, 400, "invalid_task_id").await;
    }
    for valid in ["abc_DEF-123", longest.as_str()] {
        let task = create_task(&app, &json!({ "task_id": valid })).await;
        assert_eq!(task["task_id"], valid);
        assert_eq!(app.get_json(&format!("/tasks/{valid}")).await, task);
    }
    let mut generated = Vec::new();
    for response in [
        app.post_json("/tasks", &json!({})).await,
        app.post_raw("/tasks", "", None).await,
    ] {
        let task = expect_json(response, 201, "POST /tasks without an id").await;
        let id = task["task_id"].as_str().expect("a generated id").to_owned();
        assert!(
            !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{id}"
        );
        generated.push(id);
    }
    assert_ne!(generated[0], generated[1]);

    // A taken id.
    let response = app
        .post_json("/tasks", &json!({"task_id": "abc_DEF-123"}))
        .await;
    assert_error(response, 409, "task_exists").await;

    // Every endpoint: 400 for a malformed id, 404 for an unknown one.
    let too_long = "x".repeat(129);
    for bad in ["a%20b", "%C3%A9", "a.b", "a%2Fb", too_long.as_str()] {
        for request in CALLS {
            let response = call(&app, bad, request).await;
            assert_refused(response, request, 400, "invalid_task_id").await;
        }
    }
    for request in CALLS {
        let response = call(&app, "no-such-task", request).await;
        assert_refused(response, request, 404, "task_not_found").await;
    }
}

// ---------------------------------------------------------------------------
// The orphan timeout
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn a_task_without_producer_writes_is_failed_as_orphaned() {
    // Arrange: a 1 s orphan timeout; a running task whose producer falls
    // silent, an idle pending one, and a busy one whose producer keeps writing.
    let app =
        spawn_app_with(|settings| settings.task_orphan_timeout = Duration::from_secs(1)).await;
    for id in ["orphan", "idle", "busy"] {
        create_task(&app, &json!({ "task_id": id })).await;
    }
    post_text(&app, "busy", &["0".into()]).await;
    post_text(&app, "orphan", &["the last word".into()]).await;
    let silent_since = Instant::now();
    let mut watcher = open_task_stream(&app, "orphan", None).await;
    assert_eq!(watcher.opening["status"], "running");
    let stop = AtomicBool::new(false);

    // Act: wait for the orphan to be failed while "busy" keeps writing.
    let keep_writing = async {
        let mut n = 1;
        while !stop.load(Ordering::SeqCst) {
            post_text(&app, "busy", &[n.to_string()]).await;
            n += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let watch = async {
        let failed = eventually(
            Duration::from_secs(4),
            "the orphan to be failed",
            || async {
                let task = app.get_json("/tasks/orphan").await;
                (task["status"] == "failed").then_some(task)
            },
        )
        .await;
        let after = silent_since.elapsed();
        // A negative check needs a window: the reaper runs every 250 ms, so
        // it gets several chances at "busy" in this one.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        stop.store(true, Ordering::SeqCst);
        (failed, after)
    };
    let ((), (failed, after)) = tokio::join!(keep_writing, watch);

    // Assert
    assert!(
        after >= Duration::from_millis(800) && after <= Duration::from_millis(2500),
        "failed {after:?} after the producer's last write, with a 1 s timeout"
    );
    let error = failed["error"].as_str().expect("an error");
    assert!(error.contains("orphaned"), "{failed}");
    let events = messages(watcher.stream.read_to_end(SHORT).await);
    assert_eq!(
        watcher.stream.end(),
        Some(&StreamEnd::Finished),
        "the stream ends"
    );
    let text = watcher.caught_up.take().expect("the text written before");
    assert_eq!(text_of(std::slice::from_ref(&text)), "the last word");
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].is("error"), "{events:?}");
    assert_eq!(events[0].json()["status"], "failed");
    assert!(
        events[0].json()["error"]
            .as_str()
            .unwrap()
            .contains("orphaned")
    );
    let idle = app.get_json("/tasks/idle").await;
    assert_eq!(
        idle["status"], "failed",
        "a silent pending task is an orphan too: {idle}"
    );
    let busy = app.get_json("/tasks/busy").await;
    assert_eq!(
        busy["status"], "running",
        "a producer that writes keeps its task: {busy}"
    );
}

// ---------------------------------------------------------------------------
// Task streams
// ---------------------------------------------------------------------------

/// Deltas of a generation.
const GENERATION: usize = 300;

/// A reader that drops its stream and resumes from the last event it read.
struct Dropper<'a> {
    app: &'a TestApp,
    id: &'a str,
    /// Deltas posted so far.
    posted: &'a AtomicUsize,
    /// Counts this reader's connections.
    connects: &'a AtomicUsize,
}

/// What a [`Dropper`] read.
struct Dropped {
    events: Vec<SseEvent>,
    /// Per resume: the deltas posted then, and the task of its opening `progress`.
    resumes: Vec<(usize, Value)>,
    end: Option<StreamEnd>,
}

impl Dropper<'_> {
    /// Reads `stream`; at each `(length, posted)` of `drops` it drops the
    /// stream once it has read `length` bytes of text in all, waits (as a
    /// browser's retry delay) until `posted` deltas were posted, and resumes
    /// with `Last-Event-ID`. Reads the last stream to its end.
    async fn run(&self, mut stream: OpenStream, drops: &[(usize, usize)]) -> Dropped {
        let mut events = Vec::new();
        let mut resumes = Vec::new();
        for &(length, posted) in drops {
            let read = text_of(&events).len();
            events.extend(read_text_until(&mut stream, read, length).await);
            let last = events
                .iter()
                .rev()
                .find_map(SseEvent::id_number)
                .expect("an id");
            drop(stream);
            eventually(LONG, "the producer to go on", || async {
                (self.posted.load(Ordering::SeqCst) >= posted).then_some(())
            })
            .await;
            let resumed = open_task_stream(self.app, self.id, Some(last)).await;
            self.connects.fetch_add(1, Ordering::SeqCst);
            resumes.push((self.posted.load(Ordering::SeqCst), resumed.opening));
            events.extend(resumed.caught_up);
            stream = resumed.stream;
        }
        events.extend(messages(stream.read_to_end(LONG).await));
        Dropped {
            events,
            resumes,
            end: stream.end().cloned(),
        }
    }
}

#[actix_web::test]
async fn a_resumed_task_stream_rebuilds_exactly_the_text_of_an_unbroken_one() {
    // Arrange: a generation watched by A, which never drops; B, which drops
    // twice and resumes while the generation goes on; C, which drops every
    // 25 deltas. A bystander task completes mid-generation; noise runs.
    let app = spawn_app().await;
    let id = "gen-resume";
    for task in [id, "bystander", "noise"] {
        create_task(&app, &json!({ "task_id": task })).await;
    }
    post_text(&app, "bystander", &["other".into()]).await;
    let deltas = generated_deltas(GENERATION);
    let mut a = open_task_stream(&app, id, None).await;
    let b = open_task_stream(&app, id, None).await;
    let c = open_task_stream(&app, id, None).await;
    let posted = AtomicUsize::new(0);
    let (b_connects, c_connects) = (AtomicUsize::new(1), AtomicUsize::new(1));
    let stop_noise = AtomicBool::new(false);
    let dropper = |connects| Dropper {
        app: &app,
        id,
        posted: &posted,
        connects,
    };

    // Act
    let producer = async {
        // Early on, the bystander ends: its `complete` must not end our streams.
        let early = 40;
        let mut ids = produce(&app, id, &deltas[..early], 0, &[], &posted).await;
        Finish::Complete.apply(&app, "bystander").await;
        // B resumes mid-generation: the producer waits for it if need be.
        let gates = [
            Gate {
                at: 150,
                counter: &b_connects,
                value: 2,
            },
            Gate {
                at: 250,
                counter: &b_connects,
                value: 3,
            },
        ];
        ids.extend(produce(&app, id, &deltas[early..], early, &gates, &posted).await);
        Finish::Complete.apply(&app, id).await;
        stop_noise.store(true, Ordering::SeqCst);
        ids
    };
    let reader_a = async { messages(a.stream.read_to_end(LONG).await) };
    let (dropper_b, dropper_c) = (dropper(&b_connects), dropper(&c_connects));
    let b_drops = [(chars(&deltas[..50]), 110), (chars(&deltas[..150]), 220)];
    let reader_b = dropper_b.run(b.stream, &b_drops);
    let c_drops: Vec<_> = (1..GENERATION / 25)
        .map(|n| (chars(&deltas[..n * 25]), 0))
        .collect();
    let reader_c = dropper_c.run(c.stream, &c_drops);
    let noise = publish_noise(&app, "noise", &stop_noise);
    let (events_a, b, c, produced, noise_rounds) =
        tokio::join!(reader_a, reader_b, reader_c, producer, noise);

    // Assert
    let expected: String = deltas.concat();
    assert!(noise_rounds > 0, "noise ran alongside the generation");
    assert_eq!(b.resumes.len(), 2);
    for (posted, opening) in &b.resumes {
        assert!(
            *posted < GENERATION,
            "B resumed mid-generation ({posted} posted)"
        );
        assert_eq!(opening["status"], "running", "{opening}");
    }
    assert_eq!(c.resumes.len(), GENERATION / 25 - 1);
    let ids_a: std::collections::BTreeSet<i64> = ids(&events_a).into_iter().collect();
    for (name, events) in [("A", &events_a), ("B", &b.events), ("C", &c.events)] {
        assert_only_task(events, id);
        assert_increasing(&ids(events), name);
        assert!(
            events.last().unwrap().is("complete"),
            "{name} ends with complete"
        );
        assert!(
            text_of(events) == expected,
            "{name}'s text differs from what was posted"
        );
        // A resume's rolled-up text carries the id of the last event it
        // rolls up: every id a reader saw is one A saw live.
        assert!(
            ids(events).iter().all(|id| ids_a.contains(id)),
            "{name} saw an event A did not"
        );
    }
    assert_eq!(a.stream.end(), Some(&StreamEnd::Finished));
    assert_eq!(b.end, Some(StreamEnd::Finished));
    assert_eq!(c.end, Some(StreamEnd::Finished));
    // Of A's events, the text ones (not the task's start nor its end).
    let text_events: Vec<SseEvent> = events_a.iter().filter(|e| e.is("text")).cloned().collect();
    let texts_a: Vec<i64> = ids(&text_events);
    assert_eq!(texts_a, distinct(&produced), "the ids /text answered");
}

#[actix_web::test]
async fn a_page_opened_mid_generation_gets_the_text_so_far_then_the_rest_live() {
    // Arrange: 100 deltas posted (with noise) before the page opens.
    let app = spawn_app().await;
    let id = "gen-late";
    for task in [id, "noise"] {
        create_task(&app, &json!({ "task_id": task })).await;
    }
    let deltas = generated_deltas(GENERATION);
    let posted = AtomicUsize::new(0);
    let stop_noise = AtomicBool::new(false);
    let (mut produced, _) = tokio::join!(
        async {
            let ids = produce(&app, id, &deltas[..100], 0, &[], &posted).await;
            stop_noise.store(true, Ordering::SeqCst);
            ids
        },
        publish_noise(&app, "noise", &stop_noise)
    );
    stop_noise.store(false, Ordering::SeqCst);

    // Act: the page opens (a first connect); the producer goes on at once,
    // but posts the last 100 deltas only once the page has read the first
    // 100, so those certainly arrive live.
    let mut page = open_task_stream(&app, id, None).await;
    // The text so far arrived as one event at once.
    let page_read = AtomicUsize::new(100);
    let producer = async {
        let gates = [Gate {
            at: 200,
            counter: &page_read,
            value: 100,
        }];
        let ids = produce(&app, id, &deltas[100..], 100, &gates, &posted).await;
        Finish::Complete.apply(&app, id).await;
        stop_noise.store(true, Ordering::SeqCst);
        ids
    };
    let reader = async { messages(page.stream.read_to_end(LONG).await) };
    let noise = publish_noise(&app, "noise", &stop_noise);
    let (rest, events, _) = tokio::join!(producer, reader, noise);
    produced.extend(rest);

    // Assert
    assert_eq!(page.opening["status"], "running", "{}", page.opening);
    assert_only_task(&events, id);
    let caught_up = page.caught_up.expect("the text so far, as one event");
    assert!(
        text_of(std::slice::from_ref(&caught_up)) == deltas[..100].concat(),
        "the page's first event is the text so far"
    );
    assert_eq!(caught_up.id_number(), produced.get(99).copied());
    let mut all = vec![caught_up];
    all.extend(events);
    assert!(
        text_of(&all) == deltas.concat(),
        "the page shows the whole text"
    );
    assert!(all.last().unwrap().is("complete"));
    assert_eq!(page.stream.end(), Some(&StreamEnd::Finished));
    let event_ids = ids(&all);
    assert_increasing(&event_ids, "page");
    assert_eq!(
        event_ids[1..event_ids.len() - 1],
        distinct(&produced[100..])[..],
        "the rest arrived live, one event per stored text event"
    );
}

#[actix_web::test]
async fn a_task_stream_ends_with_its_task_and_a_caught_up_resume_gets_204() {
    let app = spawn_app().await;
    create_task(&app, &json!({"task_id": "other"})).await;
    for finish in Finish::ALL {
        // Arrange: a live stream on a task that produces three deltas.
        let id = format!("done-{finish:?}");
        create_task(&app, &json!({ "task_id": id })).await;
        patch_ok(&app, &id, &json!({ "status": "running" })).await;
        let mut live = open_task_stream(&app, &id, None).await;
        let mut text_ids = post_text(&app, &id, &["a".into(), "b".into()]).await;
        text_ids.extend(post_text(&app, &id, &["c".into()]).await);

        // Act: the task ends.
        let ended = finish.apply(&app, &id).await;

        // Assert: the live stream ends right after the task's last event.
        let events = messages(live.stream.read_to_end(SHORT).await);
        assert_eq!(live.stream.end(), Some(&StreamEnd::Finished), "{finish:?}");
        assert_eq!(text_of(&events), "abc");
        assert_eq!(events.len(), 3, "one text event per request: {events:?}");
        finish.assert_last_event(&events[2], &id);
        let all_ids = ids(&events);
        assert_eq!(all_ids[..2], distinct(&text_ids)[..]);
        let last = all_ids[2];

        // A first connect to the finished task: the whole text as one
        // event, the final state, then the end.
        let mut late = open_task_stream(&app, &id, None).await;
        assert_eq!(late.opening, ended, "the opening state is the final one");
        let whole = late.caught_up.take().expect("the text, rolled up");
        assert_eq!(text_of(std::slice::from_ref(&whole)), "abc");
        assert_eq!(whole.id_number(), Some(all_ids[1]));
        let replayed = messages(late.stream.read_to_end(SHORT).await);
        assert_eq!(late.stream.end(), Some(&StreamEnd::Finished));
        assert_eq!(ids(&replayed), [last], "{finish:?}");

        // A resume from the middle: the rest, then the end.
        let mut middle = open_task_stream(&app, &id, Some(all_ids[0])).await;
        let rest_text = middle.caught_up.take().expect("the missed text");
        assert_eq!(text_of(std::slice::from_ref(&rest_text)), "c");
        assert_eq!(rest_text.id_number(), Some(all_ids[1]));
        let rest = messages(middle.stream.read_to_end(SHORT).await);
        assert_eq!(middle.stream.end(), Some(&StreamEnd::Finished));
        assert_eq!(ids(&rest), [last]);

        // A resume with nothing new for this task (others' later events do
        // not count): 204, so EventSource stops reconnecting.
        app.publish_ok(&json!({"event_type": "text", "data": {"delta": "x"}}))
            .await;
        post_text(&app, "other", &["y".into()]).await;
        let path = format!("/tasks/{id}/events");
        // (A resume point past the store's newest id is a reset, not
        // "nothing new": see replay.rs.)
        let header = last.to_string();
        let response = app
            .stream_response(&path, &[("Last-Event-ID", header.as_str())])
            .await;
        assert_eq!(response.status().as_u16(), 204, "{finish:?} after {last}");
        assert!(response.bytes().await.unwrap().is_empty());
        let response = app
            .stream_response(&format!("{path}?last_event_id={last}"), &[])
            .await;
        assert_eq!(response.status().as_u16(), 204, "the query form too");
    }
}

#[actix_web::test]
async fn a_patch_that_finishes_a_task_ends_its_streams_like_the_dedicated_endpoints() {
    let app = spawn_app().await;
    for (status, last_event, cancelled) in [
        ("completed", "complete", false),
        ("failed", "error", false),
        ("cancelled", "error", true),
    ] {
        // Arrange: a running task with a live stream.
        let id = format!("patched-{status}");
        create_task(&app, &json!({ "task_id": id })).await;
        patch_ok(&app, &id, &json!({ "status": "running" })).await;
        let mut live = open_task_stream(&app, &id, None).await;
        post_text(&app, &id, &["a".into()]).await;

        // Act: the producer finishes it with PATCH instead of /complete etc.
        let task = patch_ok(&app, &id, &json!({ "status": status })).await;

        // Assert: watchers get `progress` then the final event, and the
        // stream ends, as with /complete, /fail and /cancel.
        assert_eq!(task["status"], status);
        let events = messages(live.stream.read_to_end(SHORT).await);
        assert_eq!(live.stream.end(), Some(&StreamEnd::Finished), "{status}");
        let names: Vec<&str> = events
            .iter()
            .map(|e| e.event.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(names, ["text", "progress", last_event], "{status}");
        let last: Value = serde_json::from_str(&events[2].data).unwrap();
        assert_eq!(last["status"], status);
        assert_eq!(
            last["cancelled"].as_bool().unwrap_or(false),
            cancelled,
            "{status}"
        );
        assert_refused(
            call(&app, &id, Call::Text).await,
            Call::Text,
            409,
            if cancelled {
                "task_cancelled"
            } else {
                "task_finished"
            },
        )
        .await;
    }
}

/// A viewer following a pending task live learns that it runs when its
/// first text comes (or its first tool event), as a late viewer reads it
/// off the task: one `progress` saying `running`, and none for text after.
#[actix_web::test]
async fn a_live_viewer_hears_a_pending_task_start_running_with_its_first_text() {
    let app = spawn_app().await;
    for (id, first) in [
        ("starts-with-text", json!({ "delta": "Hello" })),
        (
            "starts-with-a-tool",
            json!({ "tool_call": { "id": "c1", "name": "weather" } }),
        ),
    ] {
        let created = app.post_json("/tasks", &json!({ "task_id": id })).await;
        assert_eq!(created.status().as_u16(), 201);
        let mut viewer = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
        let opening = viewer.next_message(SHORT).await.expect("the task's state");
        assert_eq!(opening.json()["status"], "pending", "{opening:?}");

        let body = format!("{first}\n{}\n", json!({ "delta": " world" }));
        let uploaded = app
            .api_client
            .post(app.url(&format!("/tasks/{id}/stream")))
            .header("Content-Type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("upload sent");
        assert_eq!(uploaded.status().as_u16(), 200);

        let mut seen = Vec::new();
        while let Some(event) = viewer.next_message(Duration::from_millis(500)).await {
            seen.push(event);
        }
        let progress: Vec<_> = seen.iter().filter(|e| e.is("progress")).collect();
        assert_eq!(progress.len(), 1, "{id}: {seen:?}");
        assert_eq!(progress[0].json()["status"], "running", "{id}: {seen:?}");
        assert!(
            progress[0].id.is_some(),
            "stored, so a resume has it: {seen:?}"
        );
        let text: String = seen
            .iter()
            .filter(|e| e.is("text"))
            .map(|e| e.json()["delta"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(text.ends_with("world"), "{id}: {seen:?}");
        // The start comes first: no text is read while the task says pending.
        let first_text = seen.iter().position(|e| e.is("text")).expect("text");
        let start = seen
            .iter()
            .position(|e| e.is("progress"))
            .expect("the start");
        assert!(start < first_text, "{id}: {seen:?}");
    }
}
