//! AI generations at their edges: a task that ends while its upload is
//! open, `seq` beyond what a store keeps, an SSE event that never ends, an
//! SSE body whose last event has no blank line after it, a producer whose
//! connection breaks mid-body.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    generations::{Upload, create, text_of, upload_unended},
    helpers::{
        BrokerProcess, SHORT, TestApp, assert_error, eventually, labelled_sum, sample_sum,
        spawn_app, spawn_app_with,
    },
};

/// Waits until `count` uploads are open on the broker.
async fn uploads_open(app: &TestApp, count: f64) {
    eventually(SHORT, "the upload to be open", || async {
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        (sample_sum(&metrics, "sse_task_uploads_open") == count).then_some(())
    })
    .await;
}

/// The text of task `id` so far, as a late viewer gets it (rolled up).
async fn text_so_far(app: &TestApp, id: &str) -> String {
    let mut late = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
    let seen = late.next_message(SHORT).await.expect("the text so far");
    text_of(&[seen])
}

/// The upload's answer, which must come without the body ending.
async fn answered_at_once(upload: Upload) -> reqwest::Response {
    let answer = tokio::time::timeout(SHORT, upload.answer)
        .await
        .expect("answered while the body is still open")
        .expect("the upload task");
    drop(upload.body);
    answer
}

/// The broker's whole answer on `socket` (head and a JSON body), read
/// while the request's body is still open.
async fn read_answer(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    while !String::from_utf8_lossy(&answer).trim_end().ends_with("}}") {
        let read = tokio::time::timeout(SHORT, socket.read(&mut buffer))
            .await
            .expect("answered while the body is still open")
            .expect("a read");
        assert!(read > 0, "closed before a whole answer: {answer:?}");
        answer.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8(answer).expect("UTF-8")
}

#[actix_web::test]
async fn a_task_completed_by_another_call_answers_its_open_upload_at_once() {
    // Arrange: an upload open and streaming.
    let app = spawn_app().await;
    create(&app, "elsewhere").await;
    let upload = Upload::start(&app, "elsewhere", "application/x-ndjson");
    upload.send("{\"delta\": \"so far\"}\n").await;
    eventually(SHORT, "the first token to be stored", || async {
        let task = app.get_json("/tasks/elsewhere").await;
        (task["status"] == "running").then_some(())
    })
    .await;

    // Act: the task is completed by another call.
    let done = app
        .post_json(
            "/tasks/elsewhere/complete",
            &json!({"result": {"by": "api"}}),
        )
        .await;
    assert_eq!(done.status().as_u16(), 200);

    // Assert: the producer learns it now, not at its next line.
    let answer = answered_at_once(upload).await;
    let body = assert_error(answer, 409, "task_finished").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("completed")),
        "{body}"
    );
    let mut late = app.open_stream("/tasks/elsewhere/events", &[]).await;
    assert_eq!(text_of(&late.read_to_end(SHORT).await), "so far");
}

#[actix_web::test]
async fn an_upload_to_a_task_already_over_is_refused_at_once_and_the_same_every_time() {
    let app = spawn_app().await;
    for (end, body, code, message) in [
        (
            "complete",
            json!({}),
            "task_finished",
            "the task is already completed; it accepts no more writes",
        ),
        (
            "fail",
            json!({ "error": "x" }),
            "task_finished",
            "the task is already failed; it accepts no more writes",
        ),
        (
            "cancel",
            json!({}),
            "task_cancelled",
            "the task was cancelled; stop producing",
        ),
    ] {
        // Arrange: the task ended before the upload.
        let id = format!("over-{end}");
        create(&app, &id).await;
        let ended = app.post_json(&format!("/tasks/{id}/{end}"), &body).await;
        assert_eq!(ended.status().as_u16(), 200, "{end}");

        for attempt in 0..5 {
            // Act: an upload whose first line comes with its head, its body
            // left open.
            let lines = "{\"delta\": \"late\"}\n{\"step_end\": {}}\n";
            let mut socket = upload_unended(&app, &id, "application/x-ndjson", lines).await;
            let answer = read_answer(&mut socket).await;

            // Assert: refused before any line, in the same words each time.
            assert!(
                answer.starts_with("HTTP/1.1 409"),
                "{end} #{attempt}: {answer}"
            );
            let json = &answer[answer.find('{').expect("a JSON body")..];
            let refused: Value = serde_json::from_str(json).expect("a JSON error");
            assert_eq!(refused["error"]["code"], code, "{end} #{attempt}");
            assert_eq!(refused["error"]["message"], message, "{end} #{attempt}");
        }
    }
}

#[actix_web::test]
async fn a_task_failed_by_the_orphan_timeout_answers_its_open_upload_at_once() {
    // Arrange: a 1 s orphan timeout; an upload that keeps its connection
    // open but sends nothing (within the 30 s read timeout).
    let app = spawn_app_with(|s| s.task_orphan_timeout = Duration::from_secs(1)).await;
    create(&app, "silent").await;
    let upload = Upload::start(&app, "silent", "application/x-ndjson");
    upload.send("{\"delta\": \"hello\"}\n").await;
    uploads_open(&app, 1.0).await;

    // Act: the reaper fails the task for its silence.
    eventually(Duration::from_secs(10), "the task to be failed", || async {
        let task = app.get_json("/tasks/silent").await;
        (task["status"] == "failed").then_some(())
    })
    .await;

    // Assert
    let answer = answered_at_once(upload).await;
    assert_error(answer, 409, "task_finished").await;
    uploads_open(&app, 0.0).await;
}

#[actix_web::test]
async fn an_upload_that_completes_its_task_itself_is_answered_200_at_its_end() {
    // The watch for a task ended elsewhere must not take the upload's own
    // terminal line for one: an AI SDK stream sends `finish`, then more.
    let app = spawn_app().await;
    create(&app, "own-end").await;
    let upload = Upload::start(&app, "own-end", "text/event-stream");
    upload
        .send("data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"done\"}\n\n")
        .await;
    upload.send("data: {\"type\":\"finish\"}\n\n").await;
    eventually(SHORT, "the task to be completed", || async {
        let task = app.get_json("/tasks/own-end").await;
        (task["status"] == "completed").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    upload.send("data: [DONE]\n\n").await;

    let answer = upload.finish().await;
    assert_eq!(answer.status().as_u16(), 200);
    let summary: Value = answer.json().await.expect("the summary");
    assert_eq!(summary["task"]["status"], "completed", "{summary}");
}

#[actix_web::test]
async fn a_delta_of_the_wrong_shape_in_deltas_is_refused_naming_it_and_what_it_must_be() {
    let app = spawn_app().await;
    create(&app, "bad-deltas").await;
    for (body, said) in [
        (
            json!({"deltas": [5]}),
            "deltas[0] must be a string, or an object",
        ),
        (
            json!({"deltas": ["ok", {"delta": 5}]}),
            "deltas[1].delta must be a string",
        ),
        (
            json!({"deltas": [{"delta": "a", "x": 1}]}),
            "deltas[0].x is not a known field",
        ),
        (
            json!({"deltas": ["a", {"delta": "b", "seq": -1}]}),
            "deltas[1].seq must be a whole number from 0",
        ),
        (
            json!({"deltas": ["a", {}]}),
            "deltas[1] needs one of delta and reasoning",
        ),
        (json!({"deltas": []}), "deltas is empty"),
    ] {
        let response = app.post_json("/tasks/bad-deltas/text", &body).await;
        let error = assert_error(response, 422, "invalid_field").await;
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(said), "{body}: {message}");
    }
    // A delta would have set it running: nothing of a refused request is kept.
    let task = app.get_json("/tasks/bad-deltas").await;
    assert_eq!(task["status"], "pending", "{task}");
}

#[actix_web::test]
async fn a_seq_beyond_what_the_store_keeps_is_refused_in_every_form() {
    let app = spawn_app().await;
    create(&app, "big-seq").await;
    let expected = "a whole number from 0 to 9223372036854775807";
    // 2^63 would be stored wrapped (negative), and after a restart every
    // retry would count as new text.
    for body in [
        json!({"delta": "A", "seq": 9_223_372_036_854_775_808_u64}),
        json!({"delta": "A", "seq": -1}),
        json!({"deltas": [{"delta": "A", "seq": 9_223_372_036_854_775_808_u64}]}),
    ] {
        let response = app.post_json("/tasks/big-seq/text", &body).await;
        let error = assert_error(response, 422, "invalid_field").await;
        if body.get("delta").is_some() {
            let message = error["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(expected), "{body}: {error}");
        }
    }
    let upload = Upload::start(&app, "big-seq", "application/x-ndjson");
    upload
        .send("{\"delta\": \"B\", \"seq\": 9223372036854775808}\n")
        .await;
    let answer = upload.finish().await;
    let error = assert_error(answer, 422, "invalid_payload").await;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("line 1:") && message.contains(expected),
        "{error}"
    );
    // The largest a store keeps is accepted, and a retry of it ignored.
    for expected_ids in [true, false] {
        let response = app
            .post_json(
                "/tasks/big-seq/text",
                &json!({"delta": "C", "seq": 9_223_372_036_854_775_807_u64}),
            )
            .await;
        assert_eq!(response.status().as_u16(), 202);
        let ids: Value = response.json().await.expect("ids");
        assert_eq!(ids["ids"][0].is_i64(), expected_ids, "{ids}");
    }
    let task = app.get_json("/tasks/big-seq").await;
    assert_eq!(
        task["status"], "running",
        "nothing but C was applied: {task}"
    );
}

#[actix_web::test]
async fn an_sse_event_that_never_ends_is_refused_at_the_body_limit() {
    // Each line is short; the event's data they build passes 64 KiB.
    let app = spawn_app_with(|s| s.max_upload_line_bytes = 64 * 1024).await;
    create(&app, "endless").await;
    let upload = Upload::start(&app, "endless", "text/event-stream");
    let line = format!("data: {}\n", "a".repeat(1000));
    // 200 lines of 1 KB; the broker may stop reading (and answer) at any
    // point past 64 of them.
    for _ in 0..200 {
        if upload.answer.is_finished() || upload.body.send(Ok(line.clone().into())).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let answer = upload.finish().await;
    let error = assert_error(answer, 413, "payload_too_large").await;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the event's data is longer than 65536 bytes"),
        "{error}"
    );
}

#[actix_web::test]
async fn an_openai_stream_whose_done_has_no_blank_line_after_it_completes_the_task() {
    let app = spawn_app().await;
    create(&app, "no-blank").await;
    let upload = Upload::start(&app, "no-blank", "text/event-stream");
    upload
        .send("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n")
        .await;
    upload.send("data: [DONE]\n").await;

    let answer = upload.finish().await;
    assert_eq!(answer.status().as_u16(), 200);
    let summary: Value = answer.json().await.expect("the summary");
    assert_eq!(summary["task"]["status"], "completed", "{summary}");
    assert_eq!(summary["deltas"], 1, "{summary}");
}

#[actix_web::test]
async fn task_types_past_the_label_bound_share_one_series_and_say_so_once() {
    // Arrange: the real binary (its log is read), and two more task types
    // than get series of their own, each with a first token.
    use sse_broker::telemetry::MAX_TASK_TYPES;
    let dir = tempfile::tempdir().expect("a scratch directory");
    let mut broker =
        BrokerProcess::spawn(&dir.path().join("events.db"), dir.path().join("broker.log"));
    let client = reqwest::Client::new();
    broker.wait_until_ready(&client).await;
    let post = |path: String, body: Value| {
        let request = client.post(format!("{}{path}", broker.address)).json(&body);
        async move { request.send().await.expect("sent").status().as_u16() }
    };
    for n in 0..MAX_TASK_TYPES + 2 {
        let id = format!("typed-{n}");
        let task = json!({"task_id": id, "task_type": format!("type-{n}")});
        assert_eq!(post("/tasks".into(), task).await, 201);
        let text = json!({"delta": "x"});
        assert_eq!(post(format!("/tasks/{id}/text"), text).await, 202);
    }

    // Assert: the first types keep their names, the last two are `other`,
    // and the log says so once, naming the first of them.
    let metrics = client
        .get(format!("{}/metrics", broker.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("the exposition");
    let labels: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("sse_task_time_to_first_token_seconds_count{"))
        .filter_map(|l| l.split("task_type=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(labels.len(), MAX_TASK_TYPES + 1, "{labels:?}");
    assert!(
        labels.contains("type-0") && labels.contains("other"),
        "{labels:?}"
    );
    assert!(
        !labels.contains(format!("type-{MAX_TASK_TYPES}").as_str()),
        "{labels:?}"
    );
    let logs = broker.logs();
    let said: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("more task types than the metrics label"))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains(&format!("type-{MAX_TASK_TYPES}")),
        "{said:?}"
    );
}

#[actix_web::test]
async fn an_open_upload_is_answered_503_when_the_instance_drains_and_keeps_what_it_applied() {
    // Arrange: an upload open and waiting for its producer (a model still
    // thinking), one line applied.
    let mut app = spawn_app().await;
    create(&app, "draining").await;
    let upload = Upload::start(&app, "draining", "application/x-ndjson");
    upload.send("{\"delta\": \"before \", \"seq\": 1}\n").await;
    eventually(SHORT, "the first line to be applied", || async {
        let task = app.get_json("/tasks/draining").await;
        (task["status"] == "running").then_some(())
    })
    .await;

    // Act: the instance drains (SIGTERM), the upload still open; then it
    // starts again (what the producer's retry will reach here).
    let started = std::time::Instant::now();
    app.restart().await;

    // Assert: answered, not cut off: 503 shutting_down, with Retry-After,
    // at the drain's start rather than the shutdown timeout's end.
    let answer = tokio::time::timeout(SHORT, upload.answer)
        .await
        .expect("answered")
        .expect("the upload task");
    assert_eq!(
        answer
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let error = assert_error(answer, 503, "shutting_down").await;
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("lines before this answer are applied")),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the drain waited for the upload: {:?}",
        started.elapsed()
    );
    drop(upload.body);
    // The producer resumes on another instance (here: this one, restarted)
    // with its seq: what was applied stays, a resent line is not doubled.
    let resent = app
        .post_json(
            "/tasks/draining/text",
            &json!({"deltas": [{"delta": "before ", "seq": 1}, {"delta": "after", "seq": 2}]}),
        )
        .await;
    assert_eq!(resent.status().as_u16(), 202);
    let done = app.post_json("/tasks/draining/complete", &json!({})).await;
    assert_eq!(done.status().as_u16(), 200);
    let mut late = app.open_stream("/tasks/draining/events", &[]).await;
    assert_eq!(text_of(&late.read_to_end(SHORT).await), "before after");
}

#[actix_web::test]
async fn the_whole_lines_sent_before_a_producers_connection_broke_are_applied() {
    // Arrange: chunked uploads whose one burst holds whole lines and the
    // start of another, then the connection closes without the body's end
    // (the producer crashed, or its own upstream failed mid-answer). The
    // second's last whole line ends with half a character.
    let app = spawn_app().await;
    let uploads = [
        (
            "cut",
            "{\"delta\": \"one \"}\n{\"delta\": \"two \"}\n{\"delta\": \"thr",
        ),
        ("cut-half", "{\"delta\": \"x\\ud83d\"}\n{\"delta\": \"\\udc"),
    ];
    for (id, lines) in uploads {
        create(&app, id).await;

        // Act
        let socket = upload_unended(&app, id, "application/x-ndjson", lines).await;
        drop(socket);
    }

    // Assert: the whole lines are the tasks' text (the half waiting for the
    // cut line as U+FFFD); the cut lines are not.
    eventually(SHORT, "the uploads to end as aborted", || async {
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        let aborted = labelled_sum(
            &metrics,
            "sse_task_uploads_total",
            &[("outcome", "aborted")],
        );
        (aborted == 2.0).then_some(())
    })
    .await;
    for (id, text) in [("cut", "one two "), ("cut-half", "x\u{FFFD}")] {
        let task = app.get_json(&format!("/tasks/{id}")).await;
        assert_eq!(task["status"], "running", "{task}");
        let mut late = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
        let seen = late.next_message(SHORT).await.expect("the text so far");
        assert_eq!(text_of(&[seen]), text, "{id}");
    }
}

#[actix_web::test]
async fn a_character_split_between_two_lines_arrives_whole() {
    // Arrange: a JavaScript producer cutting its text by UTF-16 code unit
    // writes each half of "👋🏽" as an escape of its own (JSON.stringify).
    let app = spawn_app().await;
    for (id, content_type, body) in [
        (
            "halves-ndjson",
            "application/x-ndjson",
            concat!(
                "{\"delta\":\"Hi \\ud83d\"}\n",
                "{\"delta\":\"\\udc4b\\ud83c\"}\n",
                "{\"delta\":\"\\udffd!\"}\n",
                "{\"delta\":\" \\udc4b\"}\n",
                "{\"complete\":{}}\n",
            ),
        ),
        (
            "halves-ai-sdk",
            "text/event-stream",
            concat!(
                "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"Hi \\ud83d\"}\n\n",
                "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"\\udc4b\\ud83c\"}\n\n",
                "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"\\udffd!\"}\n\n",
                "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\" \\udc4b\"}\n\n",
                "data: {\"type\":\"finish\"}\n\n",
            ),
        ),
    ] {
        create(&app, id).await;
        let upload = Upload::start(&app, id, content_type);

        // Act
        upload.send(body).await;
        let answer = upload.finish().await;

        // Assert: the character whole; a half with no partner shows as U+FFFD.
        assert_eq!(answer.status().as_u16(), 200, "{id}");
        let mut late = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
        let text = text_of(&late.read_to_end(SHORT).await);
        assert_eq!(text, "Hi 👋🏽! \u{FFFD}", "{id}");
    }
}

#[actix_web::test]
async fn one_producer_holds_at_most_half_the_memory_budget() {
    // Arrange: a 1 MiB budget; alice's first upload holds 300 KiB of an
    // unfinished line (5 blocks of 64 KiB beyond its free part).
    let app = spawn_app_with(|s| {
        crate::auth::with_secret(s);
        s.upload_memory_mib = 1;
    })
    .await;
    let root = crate::auth::root_token();
    for id in ["alice-1", "alice-2", "bob-1"] {
        let created =
            crate::auth::post_as(&app, "/tasks", Some(&json!({"task_id": id})), Some(&root)).await;
        assert_eq!(created.status().as_u16(), 201, "{id}");
    }
    let alice = crate::auth::token("alice", "publish", &["*"]);
    let bob = crate::auth::token("bob", "publish", &["*"]);
    let long_line = |fill: &str| format!("{{\"delta\": \"{}", fill.repeat(300 * 1024));
    let first = Upload::start_as(&app, "alice-1", "application/x-ndjson", Some(&alice));
    first.send(&long_line("a")).await;
    eventually(SHORT, "alice's first line to be held", || async {
        let metrics = crate::auth::get_as(&app, "/metrics", Some(&root))
            .await
            .text()
            .await
            .expect("metrics");
        (sample_sum(&metrics, "sse_task_uploads_memory_bytes") >= 256.0 * 1024.0).then_some(())
    })
    .await;

    // Act: alice's second upload would take her past half (512 KiB);
    // bob's, as large, is within what is left.
    let second = Upload::start_as(&app, "alice-2", "application/x-ndjson", Some(&alice));
    second.send("{\"delta\": \"kept\"}\n").await;
    second.send(&long_line("b")).await;
    let third = Upload::start_as(&app, "bob-1", "application/x-ndjson", Some(&bob));
    third.send(&long_line("c")).await;
    third.send("\"}\n{\"complete\": {}}\n").await;

    // Assert
    let refused = answered_at_once(second).await;
    let body = assert_error(refused, 503, "upload_memory_full").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("this producer's uploads hold half")),
        "{body}"
    );
    let answer = third.finish().await;
    assert_eq!(answer.status(), 200, "bob's upload is within the budget");
    first.send("\"}\n{\"complete\": {}}\n").await;
    assert_eq!(first.finish().await.status(), 200, "alice's first goes on");
}

#[actix_web::test]
async fn uploads_holding_long_lines_share_one_memory_budget_and_give_it_back() {
    // Arrange: a budget of 1 MiB for what all uploads hold beyond their
    // free 64 KiB each; two uploads, each with a whole line applied, then a
    // long line left unfinished.
    let app = spawn_app_with(|s| s.upload_memory_mib = 1).await;
    create(&app, "holds-some").await;
    create(&app, "holds-more").await;
    let first = Upload::start(&app, "holds-some", "application/x-ndjson");
    first.send("{\"delta\": \"first \"}\n").await;
    first
        .send(&format!("{{\"delta\": \"{}", "a".repeat(300 * 1024)))
        .await;
    eventually(SHORT, "the first upload's line to be held", || async {
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        (sample_sum(&metrics, "sse_task_uploads_memory_bytes") >= 256.0 * 1024.0).then_some(())
    })
    .await;
    let second = Upload::start(&app, "holds-more", "application/x-ndjson");
    second.send("{\"delta\": \"kept\"}\n").await;

    // Act: the second's unfinished line needs more than is left.
    for _ in 0..9 {
        second.send(&"b".repeat(100 * 1024)).await;
    }

    // Assert: refused with 503 and a retry hint, the whole line before it
    // applied; the first upload, within the budget, goes on.
    let refused = answered_at_once(second).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_error(refused, 503, "upload_memory_full").await;
    assert_eq!(text_so_far(&app, "holds-more").await, "kept");
    first.send("\"}\n{\"complete\": {}}\n").await;
    let answer = first.finish().await;
    assert_eq!(answer.status(), 200);
    let expected = format!("first {}", "a".repeat(300 * 1024));
    assert_eq!(text_so_far(&app, "holds-some").await, expected);

    // Assert: both gave their part back, and the same long line now fits.
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(sample_sum(&metrics, "sse_task_uploads_memory_bytes"), 0.0);
    assert_eq!(
        labelled_sum(
            &metrics,
            "sse_task_uploads_total",
            &[("outcome", "memory_full")]
        ),
        1.0
    );
    let again = Upload::start(&app, "holds-more", "application/x-ndjson");
    again
        .send(&format!("{{\"delta\": \" {}\"}}\n", "b".repeat(900 * 1024)))
        .await;
    again.send("{\"complete\": {}}\n").await;
    assert_eq!(again.finish().await.status(), 200);
    assert_eq!(
        text_so_far(&app, "holds-more").await,
        format!("kept {}", "b".repeat(900 * 1024))
    );
}
