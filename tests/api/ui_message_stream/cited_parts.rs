//! What `ai` 7 added to an answer's parts, read back by the real `ai`
//! package: the passages a text part cites (`citations` on `text-end`), a
//! file the model made in its reasoning (`reasoning-file`), content of a
//! kind only its provider knows (`custom`) and a person's message steering
//! the run (`steering-message`), written by the package's own
//! streamText (`tests/js/ai_sdk/cited_parts_stream.mjs`), piped into the
//! broker as an app would, must come back to a v7 reader, live and late,
//! as the message the SDK assembles from its own stream; an earlier
//! reader, whose schema refuses them, gets the rest of the message. An
//! NDJSON producer says the same in its lines, kept in place on a resume.

use serde_json::{Value, json};

use super::{
    ai_sdk::{Reader, Upload},
    ai_sdk_steps::parts,
};
use crate::{
    generations::pieces_of,
    helpers::{SseEvent, labelled_sum, spawn_app},
};

/// The kinds of part only a v7 reader gets.
const V7_KINDS: [&str; 3] = ["reasoning-file", "custom", "steering-message"];

#[actix_web::test]
async fn citations_reasoning_files_and_custom_parts_read_back_as_the_sdks_own_message() {
    // Arrange: the SDK's answer, and a v7 reader following the task before
    // it starts.
    let printed = super::sdk_script("cited_parts_stream.mjs");
    let body = printed["body"].as_str().expect("the body").to_owned();
    let sdk_parts = parts(&printed["message"]);
    for kind in V7_KINDS {
        assert!(sdk_parts.iter().any(|p| p["type"] == kind), "{kind}");
    }
    let sdk_text = sdk_parts.iter().find(|p| p["type"] == "text").cloned();
    let sdk_text = sdk_text.expect("a text part");
    assert_eq!(sdk_text["citations"].as_array().map(Vec::len), Some(2));
    let app = spawn_app().await;
    super::create(&app, "cited", None).await;
    let mut live = Reader::start_with(&app, "task", "cited", &["ai_sdk=7"]);
    live.until_snapshot(|_| true).await;

    // Act
    let answer = super::pipe_in(&app, "cited", body).await;

    // Assert: the SDK's own parts, live and late.
    assert_eq!(answer["task"]["status"], "completed", "{answer}");
    assert_eq!(
        answer["parts"], 3,
        "a steering message, a reasoning file, a custom part"
    );
    let live = live.finish().await;
    assert_eq!(live["errors"], json!([]), "{live}");
    assert_eq!(parts(&live["message"]), sdk_parts, "live");
    let late = Reader::start_with(&app, "task", "cited", &["ai_sdk=7"])
        .finish()
        .await;
    assert_eq!(late["errors"], json!([]), "{late}");
    assert_eq!(parts(&late["message"]), sdk_parts, "late");
    // An earlier reader: the same message but for what its schema refuses.
    let mut earlier_parts = sdk_parts.clone();
    earlier_parts.retain(|part| !V7_KINDS.iter().any(|kind| part["type"] == *kind));
    for part in &mut earlier_parts {
        part.as_object_mut().expect("an object").remove("citations");
    }
    for version in ["ai_sdk=6", "ai_sdk=5"] {
        let read = Reader::start_with(&app, "task", "cited", &[version])
            .finish()
            .await;
        assert_eq!(read["errors"], json!([]), "{version}: {read}");
        assert_eq!(parts(&read["message"]), earlier_parts, "{version}");
    }
    // The task stream keeps them as its own events.
    let events = super::read_task(&app, "cited", &[]).await;
    let kept = pieces_of(
        &events,
        &["steering_message", "file", "custom_part", "text_end"],
    );
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert_eq!(
        kept[0],
        (
            "steering_message".to_owned(),
            json!({ "id": "steer-1", "parts": [
                { "type": "text", "text": "Answer in Celsius." },
                { "type": "file", "media_type": "image/png", "url": "data:image/png;base64,iVBORw0KGgo=", "filename": "map.png" },
            ]})
        )
    );
    let kept = &kept[1..];
    assert_eq!(
        kept[0],
        (
            "file".to_owned(),
            json!({ "url": "data:image/png;base64,iVBORw0KGgo=", "media_type": "image/png", "reasoning": true })
        )
    );
    assert_eq!(kept[1].0, "custom_part");
    assert_eq!(kept[1].1["kind"], "openai.compaction");
    assert_eq!(
        kept[2].1["citations"][1],
        json!({
            "source": { "source_id": "src-2", "media_type": "application/pdf", "title": "Winter report", "filename": "winter.pdf", "provider_metadata": { "anthropic": { "page": 4 } } },
            "cited_text": "colder towards the weekend"
        })
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    for kind in ["reasoning_file", "custom", "steering_message"] {
        let counted = labelled_sum(&metrics, "sse_task_answer_parts_total", &[("kind", kind)]);
        assert_eq!(counted, 1.0, "{kind}");
    }
}

/// The frames that carry text, a file, a custom part, a steering message
/// or a text's end.
fn pieces(events: &[SseEvent]) -> Vec<(String, Value)> {
    pieces_of(
        events,
        &[
            "text",
            "file",
            "custom_part",
            "steering_message",
            "text_end",
        ],
    )
}

#[actix_web::test]
async fn ndjson_citations_reasoning_files_and_custom_parts_keep_their_place_on_resume() {
    // Arrange
    let app = spawn_app().await;
    super::create(&app, "cited-nd", None).await;
    let cited = json!({
        "source": { "id": "s1", "url": "https://met.no", "title": "MET" },
        "start_index": 0, "end_index": 5, "cited_text": "-3 °C"
    });
    let lines = [
        json!({ "reasoning": "A chart helps." }),
        json!({ "file": { "url": "data:image/png;base64,AA==", "media_type": "image/png", "reasoning": true } }),
        json!({ "custom_part": { "kind": "openai.compaction", "provider_metadata": { "openai": { "itemId": "c1" } } } }),
        json!({ "steering_message": { "id": "u1", "parts": [{ "type": "text", "text": "Short, please." }] } }),
        json!({ "delta": "Oslo " }),
        json!({ "delta": "is cold." }),
        json!({ "text_end": { "citations": [cited] } }),
        json!({ "delta": "Stay in." }),
        json!({ "complete": {} }),
    ];

    // Act
    let upload = Upload::start(&app, "cited-nd");
    for line in lines {
        upload.send(line).await;
    }
    assert_eq!(upload.finish().await, 200);

    // Assert: in place, the end with its citation between the two parts.
    let late = super::read_task(&app, "cited-nd", &[]).await;
    let text = |t: &str| ("text".to_owned(), json!(t));
    let citation = json!({
        "source": { "source_id": "s1", "url": "https://met.no", "title": "MET" },
        "start_index": 0, "end_index": 5, "cited_text": "-3 °C"
    });
    let end = ("text_end".to_owned(), json!({ "citations": [citation] }));
    let after_file = pieces(&late)[1..].to_vec();
    assert_eq!(
        after_file,
        [
            (
                "custom_part".to_owned(),
                json!({ "kind": "openai.compaction", "provider_metadata": { "openai": { "itemId": "c1" } } })
            ),
            (
                "steering_message".to_owned(),
                json!({ "id": "u1", "parts": [{ "type": "text", "text": "Short, please." }] })
            ),
            text("Oslo is cold."),
            end.clone(),
            text("Stay in."),
        ]
    );
    // A viewer who saw the custom part resumes after it: the rest, once.
    let custom_id = late
        .iter()
        .find(|e| e.is("custom_part"))
        .and_then(|e| e.id.clone())
        .expect("the custom part's id");
    let resumed = super::read_task(&app, "cited-nd", &[("Last-Event-ID", &custom_id)]).await;
    assert_eq!(pieces(&resumed), after_file[1..]);
    // A v7 reader: the steering message, the text part citing its source,
    // the next part citing none.
    let read = Reader::start_with(&app, "task", "cited-nd", &["ai_sdk=7"])
        .finish()
        .await;
    assert_eq!(read["errors"], json!([]), "{read}");
    let steering = parts(&read["message"])
        .into_iter()
        .find(|part| part["type"] == "steering-message");
    assert_eq!(
        steering,
        Some(
            json!({ "type": "steering-message", "id": "u1", "parts": [{ "type": "text", "text": "Short, please." }] })
        )
    );
    let texts: Vec<_> = parts(&read["message"])
        .into_iter()
        .filter(|part| part["type"] == "text")
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(
        texts[0]["citations"],
        json!([{
            "source": { "type": "source", "sourceType": "url", "id": "s1", "url": "https://met.no", "title": "MET" },
            "startIndex": 0, "endIndex": 5, "citedText": "-3 °C"
        }])
    );
    assert_eq!(texts[1].get("citations"), None);
}

#[actix_web::test]
async fn a_citation_or_part_no_reader_could_take_is_refused_naming_it() {
    let app = spawn_app().await;
    let refused = [
        (
            "application/x-ndjson",
            json!({ "reasoning_end": { "citations": [] } }),
            "citations go with a text_end",
        ),
        (
            "application/x-ndjson",
            json!({ "text_end": { "citations": [{ "source": { "id": "s1", "url": "https://e.com" }, "start_index": 9, "end_index": 2 }] } }),
            "start index is past its end index",
        ),
        (
            "application/x-ndjson",
            json!({ "custom_part": { "kind": " " } }),
            "kind is blank",
        ),
        (
            "text/event-stream",
            json!({ "type": "text-end", "id": "t", "citations": [{ "source": { "type": "source", "sourceType": "url", "id": "s1", "url": "https://e.com" }, "startIndex": -1 }] }),
            "startIndex must be a whole number",
        ),
        (
            "text/event-stream",
            json!({ "type": "text-end", "id": "t", "citations": [{ "source": { "type": "source", "sourceType": "page", "id": "s1" } }] }),
            "sourceType must be url or document",
        ),
        (
            "text/event-stream",
            json!({ "type": "reasoning-file", "url": "data:image/png;base64,AA==" }),
            "needs mediaType",
        ),
        (
            "text/event-stream",
            json!({ "type": "steering-message", "id": "u1", "parts": [{ "type": "image", "url": "u" }] }),
            "must be of type text or file",
        ),
        (
            "application/x-ndjson",
            json!({ "steering_message": { "id": "u1", "parts": [{ "type": "file", "media_type": "image/png", "url": "u", "provider_reference": { "openai": 1 } }] } }),
            "provider reference must be an object of strings",
        ),
    ];
    for (at, (content_type, line, said)) in refused.into_iter().enumerate() {
        let id = format!("refused-{at}");
        super::create(&app, &id, None).await;
        let body = if content_type == "text/event-stream" {
            format!("data: {line}\n\n")
        } else {
            format!("{line}\n")
        };
        let answer = app
            .api_client
            .post(app.url(&format!("/tasks/{id}/stream")))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("upload sent");
        assert_eq!(answer.status().as_u16(), 422, "{line}");
        let error: Value = answer.json().await.expect("a JSON error");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(said), "{line}: {message}");
    }
}
