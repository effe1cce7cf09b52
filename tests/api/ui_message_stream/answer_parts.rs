//! What a chat UI renders beside an answer's text, read by the real `ai`
//! package: an AI SDK app's own data parts (a transient status, a card's
//! data updated under one id) and streamText's sources and file
//! (`tests/js/ai_sdk/answer_parts_stream.mjs`), piped into the broker as
//! an app would, must come back to a reader of the broker, live and late,
//! as the message the SDK assembles from its own stream, and `onData` must
//! see the same data parts. An NDJSON producer's `source`, `file` and
//! `data_part` lines reach the task stream in order with the text, and a
//! late or resuming viewer gets each in its place.

use serde_json::{Value, json};

use super::{ai_sdk::Reader, ai_sdk_steps::parts};
use crate::{
    generations::{Upload, create, pieces_of},
    helpers::{LONG, SHORT, SseEvent, assert_error, labelled_sum, spawn_app},
};

/// The SDK's own answer: its UI message stream's body, the message the
/// SDK assembles from it, and the data parts its reader got.
fn sdk_answer() -> (String, Value, Value) {
    let printed = super::sdk_script("answer_parts_stream.mjs");
    let body = printed["body"].as_str().expect("the body").to_owned();
    (body, printed["message"].clone(), printed["data"].clone())
}

#[actix_web::test]
async fn an_sdk_apps_sources_file_and_data_parts_read_back_as_the_sdks_own_message_live_and_late() {
    // Arrange: the SDK's answer, and a reader following the task before it
    // starts.
    let (body, sdk_message, sdk_data) = sdk_answer();
    let kinds: Vec<_> = parts(&sdk_message)
        .iter()
        .map(|part| part["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    for kind in [
        "data-weather",
        "source-url",
        "source-document",
        "file",
        "text",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {sdk_message}");
    }
    let app = spawn_app().await;
    super::create(&app, "parts-gen", Some("chat-parts")).await;
    let mut live = Reader::start_with(&app, "task", "parts-gen", &["ai_sdk=7"]);
    live.until_snapshot(|_| true).await;

    // Act: the app pipes the SDK's response body into the broker.
    let answer = super::pipe_in(&app, "parts-gen", body).await;
    // Four data parts, two sources, one file.
    assert_eq!(answer["parts"], 7, "{answer}");
    assert_eq!(answer["task"]["status"], "completed", "{answer}");

    // Assert: live and late, the SDK's own parts, and onData's parts.
    let live = live.finish().await;
    assert_eq!(live["errors"], json!([]), "{live}");
    assert_eq!(parts(&live["message"]), parts(&sdk_message), "live");
    assert_eq!(live["data"], sdk_data, "live data parts");
    let late = Reader::start_with(&app, "task", "parts-gen", &["ai_sdk=5"])
        .finish()
        .await;
    assert_eq!(late["errors"], json!([]), "{late}");
    assert_eq!(parts(&late["message"]), parts(&sdk_message), "late");
    assert_eq!(late["data"], sdk_data, "late data parts, replayed");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    for (kind, count) in [("source", 2.0), ("file", 1.0), ("data", 4.0)] {
        let counted = labelled_sum(&metrics, "sse_task_answer_parts_total", &[("kind", kind)]);
        assert_eq!(counted, count, "{kind}");
    }
}

/// Each frame that carries text or an answer part (see `pieces_of`).
fn pieces(events: &[SseEvent]) -> Vec<(String, Value)> {
    pieces_of(events, &["text", "source", "file", "data_part"])
}

#[actix_web::test]
async fn ndjson_sources_files_and_data_parts_stream_in_place_and_keep_it_on_resume() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "ndjson-parts").await;
    let mut viewer = app.open_stream("/tasks/ndjson-parts/events", &[]).await;
    let source = json!({ "source_id": "s1", "url": "https://met.no", "title": "MET" });
    let file = json!({ "url": "data:image/png;base64,AA==", "media_type": "image/png" });
    let card =
        json!({ "name": "weather", "id": "w1", "data": { "celsius": -3 }, "transient": true });
    let lines = [
        json!({ "delta": "Oslo " }),
        json!({ "source": { "id": "s1", "url": "https://met.no", "title": "MET" } }),
        json!({ "delta": "is " }),
        json!({ "delta": "cold." }),
        json!({ "file": { "url": "data:image/png;base64,AA==", "media_type": "image/png" } }),
        json!({ "data_part": { "name": "weather", "id": "w1", "data": { "celsius": -3 }, "transient": true } }),
        json!({ "complete": {} }),
    ];

    // Act
    let upload = Upload::start(&app, "ndjson-parts", "application/x-ndjson");
    for line in &lines {
        upload.send(&format!("{line}\n")).await;
    }
    let answer = upload.finish().await;

    // Assert: live, each in order with the text.
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = answer.json().await.expect("a JSON answer");
    assert_eq!(answer["parts"], 3, "{answer}");
    let live = viewer.read_to_end(LONG).await;
    let text = |t: &str| ("text".to_owned(), json!(t));
    let part = |kind: &str, data: &Value| (kind.to_owned(), data.clone());
    let live_pieces = pieces(&live);
    let live_text: String = live_pieces
        .iter()
        .filter(|(kind, _)| kind == "text")
        .map(|(_, delta)| delta.as_str().unwrap_or_default())
        .collect();
    assert_eq!(live_text, "Oslo is cold.");
    let live_parts: Vec<_> = live_pieces
        .iter()
        .filter(|(kind, _)| kind != "text")
        .collect();
    assert_eq!(
        live_parts,
        [
            &part("source", &source),
            &part("file", &file),
            &part("data_part", &card)
        ]
    );
    // A late viewer: the runs of text rolled up around the parts.
    let late = super::read_task(&app, "ndjson-parts", &[]).await;
    assert_eq!(
        pieces(&late),
        [
            text("Oslo "),
            part("source", &source),
            text("is cold."),
            part("file", &file),
            part("data_part", &card),
        ]
    );
    // A viewer that saw the source resumes after it: the rest, once.
    let after_source = late
        .iter()
        .find(|e| e.is("source"))
        .and_then(|e| e.id.clone())
        .expect("the source's id");
    let resumed = super::read_task(&app, "ndjson-parts", &[("Last-Event-ID", &after_source)]).await;
    assert_eq!(
        pieces(&resumed),
        [
            text("is cold."),
            part("file", &file),
            part("data_part", &card)
        ]
    );
}

#[actix_web::test]
async fn a_malformed_part_line_is_refused_naming_it_and_the_lines_before_it_stay() {
    let app = spawn_app().await;
    create(&app, "bad-part").await;
    let body = [
        json!({ "delta": "kept" }),
        json!({ "source": { "id": "s1", "url": "https://e.com" } }),
        json!({ "source": { "id": "s2" } }),
        json!({ "delta": "never" }),
    ]
    .iter()
    .map(|line| format!("{line}\n"))
    .collect::<String>();
    let answer = app
        .api_client
        .post(app.url("/tasks/bad-part/stream"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("upload sent");
    let error = assert_error(answer, 422, "invalid_payload").await;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("line 3:"), "{message}");
    assert!(
        message.contains("a source cites a url, or a document"),
        "{message}"
    );
    // The task runs on (the orphan timeout applies): what came before stays.
    let mut late = app.open_stream("/tasks/bad-part/events", &[]).await;
    let got = pieces(&late.take_messages(3, SHORT).await);
    assert_eq!(
        got,
        [
            ("text".to_owned(), json!("kept")),
            (
                "source".to_owned(),
                json!({ "source_id": "s1", "url": "https://e.com" })
            ),
        ]
    );
}
