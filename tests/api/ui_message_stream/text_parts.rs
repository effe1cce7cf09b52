//! An answer the `ai` package writes in several parts of text and of
//! reasoning (`tests/js/ai_sdk/text_parts_stream.mjs`: two thoughts, two
//! paragraphs with a source cited between them, a third paragraph right
//! after the second), piped into the broker as an app would, must come
//! back to a reader of the broker, live and late, as the message the SDK
//! assembles from its own stream: each part apart, the source between the
//! paragraphs it came between. The task stream keeps a `text_end` or
//! `reasoning_end` only where it parts text from what follows, and a
//! catch-up never rolls two parts' text into one.

use serde_json::{Value, json};

use super::{ai_sdk::Reader, ai_sdk_steps::parts};
use crate::{
    generations::pieces_of,
    helpers::{SseEvent, spawn_app},
};

/// Each frame that carries text or parts it (see `pieces_of`).
fn pieces(events: &[SseEvent]) -> Vec<(String, Value)> {
    let kinds = ["text", "reasoning", "text_end", "reasoning_end", "source"];
    pieces_of(events, &kinds)
}

#[actix_web::test]
async fn an_answer_in_several_text_parts_reads_back_part_by_part_live_late_and_resumed() {
    // Arrange: the SDK's answer, and a reader following the task before it
    // starts.
    let printed = super::sdk_script("text_parts_stream.mjs");
    let body = printed["body"].as_str().expect("the body").to_owned();
    let sdk_message = printed["message"].clone();
    let texts: Vec<_> = parts(&sdk_message)
        .iter()
        .filter(|part| part["type"] == "text")
        .map(|part| part["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [
            json!("Oslo is cold."),
            json!("It snows tonight."),
            json!("Wear a hat.")
        ],
        "{sdk_message}"
    );
    let app = spawn_app().await;
    super::create(&app, "paragraphs", None).await;
    let mut live = Reader::start_with(&app, "task", "paragraphs", &["ai_sdk=7"]);
    live.until_snapshot(|_| true).await;

    // Act: the app pipes the SDK's response body into the broker.
    let answer = super::pipe_in(&app, "paragraphs", body).await;
    assert_eq!(answer["task"]["status"], "completed", "{answer}");

    // Assert: live and late, the SDK's own parts.
    let live = live.finish().await;
    assert_eq!(live["errors"], json!([]), "{live}");
    assert_eq!(parts(&live["message"]), parts(&sdk_message), "live");
    let late = Reader::start_with(&app, "task", "paragraphs", &["ai_sdk=5"])
        .finish()
        .await;
    assert_eq!(late["errors"], json!([]), "{late}");
    assert_eq!(parts(&late["message"]), parts(&sdk_message), "late");

    // The task stream: the ends kept where they part text, the text of
    // each part rolled up on its own; none before the answer's end.
    let text = |t: &str| ("text".to_owned(), json!(t));
    let reasoning = |t: &str| ("reasoning".to_owned(), json!({ "delta": t }));
    let end = |kind: &str| (kind.to_owned(), json!({}));
    let source = (
        "source".to_owned(),
        json!({ "source_id": "src-1", "url": "https://met.no/oslo", "title": "MET Norway" }),
    );
    let events = super::read_task(&app, "paragraphs", &[]).await;
    assert_eq!(
        pieces(&events),
        [
            reasoning("The user wants Oslo."),
            end("reasoning_end"),
            reasoning("Check the forecast."),
            text("Oslo is cold."),
            end("text_end"),
            source.clone(),
            text("It snows tonight."),
            end("text_end"),
            text("Wear a hat."),
        ]
    );
    // A viewer that saw the first paragraph's end resumes after it.
    let after_first = events
        .iter()
        .find(|e| e.is("text_end"))
        .and_then(|e| e.id.clone())
        .expect("the end's id");
    let resumed = super::read_task(&app, "paragraphs", &[("Last-Event-ID", &after_first)]).await;
    assert_eq!(
        pieces(&resumed),
        [
            source,
            text("It snows tonight."),
            end("text_end"),
            text("Wear a hat."),
        ]
    );
}

#[actix_web::test]
async fn an_answer_cut_into_two_uploads_at_a_parts_end_keeps_its_parts_apart() {
    // Arrange: the SDK's answer, cut just before and just after its first
    // paragraph's end (a dropped upload, the rest sent again).
    let printed = super::sdk_script("text_parts_stream.mjs");
    let body = printed["body"].as_str().expect("the body");
    let sdk_message = printed["message"].clone();
    let events: Vec<&str> = body.split_inclusive("\n\n").collect();
    let end = events
        .iter()
        .position(|event| event.contains(r#""type":"text-end","id":"t1""#))
        .expect("the first paragraph's end");
    let app = spawn_app().await;

    for (task, cut) in [("cut-before-end", end), ("cut-after-end", end + 1)] {
        super::create(&app, task, None).await;

        // Act: two uploads, the first with no end of the answer.
        for (upload, status) in [
            (events[..cut].concat(), "running"),
            (events[cut..].concat(), "completed"),
        ] {
            let answer = super::pipe_in(&app, task, upload).await;
            assert_eq!(answer["task"]["status"], status, "{task}: {answer}");
        }

        // Assert: the SDK's own parts, the paragraphs apart.
        let late = Reader::start_with(&app, "task", task, &["ai_sdk=7"])
            .finish()
            .await;
        assert_eq!(late["errors"], json!([]), "{late}");
        assert_eq!(parts(&late["message"]), parts(&sdk_message), "{task}");
    }
}

#[actix_web::test]
async fn an_ndjson_producer_parts_its_text_with_text_end_lines() {
    // Arrange: paragraphs ended by `text_end`, one end that parts nothing.
    let app = spawn_app().await;
    super::create(&app, "ndjson-paragraphs", None).await;
    let body = [
        json!({ "reasoning": "Plan." }),
        json!({ "reasoning_end": {} }),
        json!({ "delta": "One." }),
        json!({ "text_end": {} }),
        json!({ "delta": "Two." }),
        json!({ "text_end": {} }),
        json!({ "complete": {} }),
    ]
    .iter()
    .map(|line| format!("{line}\n"))
    .collect::<String>();

    // Act
    let answer = app
        .api_client
        .post(app.url("/tasks/ndjson-paragraphs/stream"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("upload sent");

    // Assert: the end that parts the paragraphs is kept; the reasoning's
    // (the text ends it) and the last (the answer's end does) are not.
    assert_eq!(answer.status().as_u16(), 200);
    let events = super::read_task(&app, "ndjson-paragraphs", &[]).await;
    assert_eq!(
        pieces(&events),
        [
            ("reasoning".to_owned(), json!({ "delta": "Plan." })),
            ("text".to_owned(), json!("One.")),
            ("text_end".to_owned(), json!({})),
            ("text".to_owned(), json!("Two.")),
        ]
    );
    let late = Reader::start_with(&app, "task", "ndjson-paragraphs", &["ai_sdk=7"])
        .finish()
        .await;
    let texts: Vec<_> = parts(&late["message"])
        .iter()
        .filter(|part| part["type"] == "text")
        .map(|part| part["text"].clone())
        .collect();
    assert_eq!(texts, [json!("One."), json!("Two.")], "{late}");
}

/// What the model's provider says of a part (`providerMetadata`: a
/// thought's signature in a delta of its own, a redacted thought with no
/// text, a paragraph's item id on its start and its end, a tool call's
/// thought signature) is what the chat's next model call needs back from
/// the saved message: a reader of the broker, live and late, gets the
/// message the SDK assembles, every part's metadata included.
#[actix_web::test]
async fn what_the_provider_says_of_each_part_reads_back_as_the_sdks_own_message() {
    // Arrange
    let printed = super::sdk_script("provider_metadata_stream.mjs");
    let body = printed["body"].as_str().expect("the body").to_owned();
    let sdk_message = printed["message"].clone();
    let said = parts(&sdk_message)
        .iter()
        .filter(|part| {
            part.get("providerMetadata").is_some() || part.get("callProviderMetadata").is_some()
        })
        .count();
    assert_eq!(said, 4, "the SDK's own message: {sdk_message}");
    let app = spawn_app().await;
    super::create(&app, "said", None).await;
    let mut live = Reader::start_with(&app, "task", "said", &["ai_sdk=7"]);
    live.until_snapshot(|_| true).await;

    // Act
    let answer = super::pipe_in(&app, "said", body).await;
    assert_eq!(answer["task"]["status"], "completed", "{answer}");

    // Assert
    let live = live.finish().await;
    assert_eq!(live["errors"], json!([]), "{live}");
    assert_eq!(parts(&live["message"]), parts(&sdk_message), "live");
    for version in ["ai_sdk=7", "ai_sdk=5"] {
        let late = Reader::start_with(&app, "task", "said", &[version])
            .finish()
            .await;
        assert_eq!(late["errors"], json!([]), "{late}");
        assert_eq!(
            parts(&late["message"]),
            parts(&sdk_message),
            "late, {version}"
        );
    }
    // The task stream keeps it on the parts' ends (and the call's event).
    let events = super::read_task(&app, "said", &[]).await;
    let ends: Vec<Value> = events
        .iter()
        .filter(|event| event.is("reasoning_end") || event.is("text_end"))
        .map(|event| event.json()["provider_metadata"].clone())
        .collect();
    assert_eq!(
        ends,
        [
            json!({ "anthropic": { "signature": "SIG-1" } }),
            json!({ "anthropic": { "redactedData": "REDACTED-2" } }),
            json!({ "openai": { "itemId": "msg_1", "phase": "final" } }),
        ]
    );
}

/// An answer cut into two uploads inside a part whose provider said
/// something of its start and of its end (OpenAI's item id): the part
/// stays one, and keeps what was said last, as in the SDK's own message.
#[actix_web::test]
async fn an_answer_cut_inside_a_part_said_of_keeps_the_part_whole() {
    // Arrange: cut after the first paragraph's first delta.
    let printed = super::sdk_script("provider_metadata_stream.mjs");
    let body = printed["body"].as_str().expect("the body");
    let sdk_message = printed["message"].clone();
    let events: Vec<&str> = body.split_inclusive("\n\n").collect();
    let cut = 1 + events
        .iter()
        .position(|event| event.contains(r#""delta":"Oslo is ""#))
        .expect("the paragraph's first delta");
    let app = spawn_app().await;
    super::create(&app, "cut-inside", None).await;

    // Act
    for (upload, status) in [
        (events[..cut].concat(), "running"),
        (events[cut..].concat(), "completed"),
    ] {
        let answer = super::pipe_in(&app, "cut-inside", upload).await;
        assert_eq!(answer["task"]["status"], status, "{answer}");
    }

    // Assert
    let late = Reader::start_with(&app, "task", "cut-inside", &["ai_sdk=7"])
        .finish()
        .await;
    assert_eq!(late["errors"], json!([]), "{late}");
    assert_eq!(parts(&late["message"]), parts(&sdk_message));
}
