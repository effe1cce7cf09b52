//! A reasoning model's thinking, streamed apart from its answer: NDJSON
//! `{"reasoning"}` lines, `POST /tasks/{id}/text` with `reasoning`, and
//! each provider's thinking piped straight in become `reasoning` events,
//! live; a late or resuming viewer gets one event per run of one kind, in
//! order, each under the id of its run's last event, so a resume between
//! them neither skips nor repeats a byte.

use serde_json::{Value, json};

use crate::{
    generations::{Upload, create, deltas_of, text_of},
    helpers::{LONG, SHORT, SseEvent, TestApp, assert_error, spawn_app},
};

/// The text of a stream's `reasoning` events, joined.
fn reasoning_of(events: &[SseEvent]) -> String {
    deltas_of(events, "reasoning")
}

/// Each frame's type, id and `delta`, for the ones that carry text.
fn runs(events: &[SseEvent]) -> Vec<(String, i64, String)> {
    events
        .iter()
        .filter(|e| e.is("text") || e.is("reasoning"))
        .map(|e| {
            let id = e.id.as_deref().expect("a text frame has an id");
            (
                e.event.clone().unwrap_or_default(),
                id.parse().expect("a numeric id"),
                e.json()["delta"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Uploads `lines` (NDJSON) to a new task `id` while a viewer watches; the
/// answer and what the viewer saw.
async fn upload_watched(app: &TestApp, id: &str, lines: &[Value]) -> (Value, Vec<SseEvent>) {
    create(app, id).await;
    let mut viewer = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
    let upload = Upload::start(app, id, "application/x-ndjson");
    for line in lines {
        upload.send(&format!("{line}\n")).await;
    }
    let answer = upload.finish().await;
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = answer.json().await.expect("a JSON answer");
    (answer, viewer.read_to_end(LONG).await)
}

#[actix_web::test]
async fn reasoning_streams_apart_from_the_answer_and_rolls_up_a_run_each() {
    // Arrange: thinking, answer, more thinking, the rest of the answer.
    let app = spawn_app().await;
    let lines = [
        json!({ "reasoning": "Two and ", "seq": 1 }),
        json!({ "reasoning": "two: ", "seq": 2 }),
        json!({ "reasoning": "four.", "seq": 3 }),
        json!({ "delta": "It is ", "seq": 4 }),
        json!({ "delta": "four", "seq": 5 }),
        json!({ "reasoning": "Sure?", "seq": 6 }),
        json!({ "delta": ".", "seq": 7 }),
        json!({ "reasoning": "Sure?", "seq": 6 }),
        json!({ "complete": {} }),
    ];

    // Act
    let (answer, live) = upload_watched(&app, "thinker", &lines).await;

    // Assert: the live viewer saw each kind apart, the retry nowhere.
    assert_eq!(
        answer["deltas"], 7,
        "the retried seq is not counted: {answer}"
    );
    assert_eq!(answer["chars"], "It is four.".len(), "{answer}");
    assert_eq!(
        answer["reasoning_chars"],
        "Two and two: four.Sure?".len(),
        "{answer}"
    );
    assert_eq!(text_of(&live), "It is four.");
    assert_eq!(reasoning_of(&live), "Two and two: four.Sure?");

    // A late viewer: a rolled-up event per run, in order, under increasing ids.
    let mut late = app.open_stream("/tasks/thinker/events", &[]).await;
    let late = late.read_to_end(SHORT).await;
    let rolled = runs(&late);
    let kinds: Vec<(&str, &str)> = rolled
        .iter()
        .map(|(kind, _, delta)| (kind.as_str(), delta.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("reasoning", "Two and two: four."),
            ("text", "It is four"),
            ("reasoning", "Sure?"),
            ("text", "."),
        ]
    );
    assert!(
        rolled.windows(2).all(|pair| pair[0].1 < pair[1].1),
        "ids increase: {rolled:?}"
    );
    let live_ids: Vec<i64> = runs(&live).iter().map(|(_, id, _)| *id).collect();
    assert_eq!(
        rolled.last().map(|run| run.1),
        live_ids.last().copied(),
        "the last run carries the last text id"
    );

    // A viewer cut off after the first run resumes with the rest, once.
    let first_run = rolled[0].1.to_string();
    let mut resumed = app
        .open_stream("/tasks/thinker/events", &[("Last-Event-ID", &first_run)])
        .await;
    let resumed = resumed.read_to_end(SHORT).await;
    assert_eq!(text_of(&resumed), "It is four.");
    assert_eq!(
        reasoning_of(&resumed),
        "Sure?",
        "nothing of the first run again"
    );
}

#[actix_web::test]
async fn the_text_endpoint_takes_reasoning_and_numbers_it_with_the_answer() {
    let app = spawn_app().await;
    create(&app, "thinking-text").await;

    let first = app
        .post_json(
            "/tasks/thinking-text/text",
            &json!({ "reasoning": "Hmm. ", "seq": 1 }),
        )
        .await;
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.unwrap();
    let mixed = app
        .post_json(
            "/tasks/thinking-text/text",
            &json!({ "deltas": [
                { "reasoning": "Yes.", "seq": 2 },
                { "delta": "Answer", "seq": 3 },
                { "reasoning": "Hmm. ", "seq": 1 },
            ] }),
        )
        .await;
    assert_eq!(mixed.status().as_u16(), 202);
    let mixed: Value = mixed.json().await.unwrap();

    // Each piece answers the id of its own event, null for the retry.
    let ids = mixed["ids"].as_array().expect("ids");
    assert!(first["ids"][0].as_i64().is_some(), "{first}");
    assert!(ids[0].as_i64() > first["ids"][0].as_i64(), "{mixed}");
    assert!(ids[1].as_i64() > ids[0].as_i64(), "two events: {mixed}");
    assert_eq!(ids[2], Value::Null, "a retried seq: {mixed}");
    app.post_json("/tasks/thinking-text/complete", &json!({}))
        .await;
    let mut late = app.open_stream("/tasks/thinking-text/events", &[]).await;
    let late = late.read_to_end(SHORT).await;
    assert_eq!(reasoning_of(&late), "Hmm. Yes.");
    assert_eq!(text_of(&late), "Answer");
    let rolled: Vec<i64> = runs(&late).iter().map(|run| run.1).collect();
    assert_eq!(
        rolled,
        [ids[0].as_i64().unwrap(), ids[1].as_i64().unwrap()],
        "the answered ids are the reasoning's and the text's"
    );

    // Three runs in one request, and a resume from each answered id.
    create(&app, "thinking-runs").await;
    let interleaved = app
        .post_json(
            "/tasks/thinking-runs/text",
            &json!({ "deltas": [{ "reasoning": "c" }, "d", "", { "reasoning": "e" }] }),
        )
        .await;
    let interleaved: Value = interleaved.json().await.unwrap();
    let ids: Vec<i64> = interleaved["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_i64().expect("an id"))
        .collect();
    assert!(ids[0] < ids[1] && ids[1] < ids[3], "{interleaved}");
    assert_eq!(ids[2], ids[1], "an empty piece: the event around it");
    app.post_json("/tasks/thinking-runs/complete", &json!({}))
        .await;
    for (after, reasoning, text) in [(ids[0], "e", "d"), (ids[1], "e", ""), (ids[3], "", "")] {
        let resume = after.to_string();
        let mut resumed = app
            .open_stream("/tasks/thinking-runs/events", &[("Last-Event-ID", &resume)])
            .await;
        let resumed = resumed.read_to_end(SHORT).await;
        assert_eq!(reasoning_of(&resumed), reasoning, "after {after}");
        assert_eq!(text_of(&resumed), text, "after {after}");
    }

    // Bad input: clear JSON errors, nothing stored.
    create(&app, "thinking-bad").await;
    for (body, status, code) in [
        (
            json!({ "delta": "a", "reasoning": "b" }),
            422,
            "invalid_field",
        ),
        (json!({ "reasoning": 5 }), 422, "invalid_field"),
        (
            json!({ "reasoning": "a", "deltas": ["b"] }),
            422,
            "invalid_field",
        ),
        (
            json!({ "deltas": [{ "delta": "a", "reasoning": "b" }] }),
            422,
            "invalid_field",
        ),
    ] {
        let response = app.post_json("/tasks/thinking-bad/text", &body).await;
        assert_error(response, status, code).await;
    }
    app.post_json("/tasks/thinking-bad/complete", &json!({}))
        .await;
    let mut late = app.open_stream("/tasks/thinking-bad/events", &[]).await;
    let late = late.read_to_end(SHORT).await;
    assert!(runs(&late).is_empty(), "nothing stored: {late:?}");
}

#[actix_web::test]
async fn each_providers_thinking_is_read_as_reasoning() {
    let app = spawn_app().await;
    for (id, body, reasoning, text) in [
        (
            // DeepSeek, vLLM and Qwen say `reasoning_content`.
            "deepseek",
            concat!(
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"\"}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"reasoning_content\":\"Add them.\"}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\",\"reasoning_content\":null}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                "data: [DONE]\n\n",
            ),
            "Add them.",
            "4",
        ),
        (
            // OpenRouter and Ollama say `reasoning`.
            "openrouter",
            concat!(
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"reasoning\":\"Easy.\"}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\"},\"finish_reason\":\"stop\"}]}\n\n",
                "data: [DONE]\n\n",
            ),
            "Easy.",
            "4",
        ),
        (
            "anthropic-thinking",
            concat!(
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Two \"}}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"plus two.\"}}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQB\"}}\n\n",
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"4\"}}\n\n",
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            ),
            "Two plus two.",
            "4",
        ),
        (
            "responses-summary",
            concat!(
                "data: {\"type\":\"response.reasoning_summary_text.delta\",\"item_id\":\"rs\",\"output_index\":0,\"summary_index\":0,\"delta\":\"**Adding**\"}\n\n",
                "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"output_index\":1,\"content_index\":0,\"delta\":\"4\"}\n\n",
                "data: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\"}}\n\n",
            ),
            "**Adding**",
            "4",
        ),
        (
            "gemini-thoughts",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Simple sum.\",\"thought\":true},{\"text\":\"4\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}]}\n\n",
            "Simple sum.",
            "4",
        ),
        (
            "ai-sdk-reasoning",
            concat!(
                "data: {\"type\":\"start\"}\n\n",
                "data: {\"type\":\"reasoning-start\",\"id\":\"r1\"}\n\n",
                "data: {\"type\":\"reasoning-delta\",\"id\":\"r1\",\"delta\":\"Sum it.\"}\n\n",
                "data: {\"type\":\"reasoning-end\",\"id\":\"r1\"}\n\n",
                "data: {\"type\":\"text-start\",\"id\":\"t1\"}\n\n",
                "data: {\"type\":\"text-delta\",\"id\":\"t1\",\"delta\":\"4\"}\n\n",
                "data: {\"type\":\"text-end\",\"id\":\"t1\"}\n\n",
                "data: {\"type\":\"finish\"}\n\n",
                "data: [DONE]\n\n",
            ),
            "Sum it.",
            "4",
        ),
    ] {
        create(&app, id).await;
        let mut viewer = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
        let upload = Upload::start(&app, id, "text/event-stream");
        upload.send(body).await;
        let answer = upload.finish().await;
        assert_eq!(answer.status().as_u16(), 200, "{id}");
        let answer: Value = answer.json().await.expect("a JSON answer");
        let seen = viewer.read_to_end(LONG).await;

        assert_eq!(answer["task"]["status"], "completed", "{id}: {answer}");
        assert_eq!(
            answer["reasoning_chars"],
            reasoning.chars().count(),
            "{id}: {answer}"
        );
        assert_eq!(reasoning_of(&seen), reasoning, "{id}: live");
        assert_eq!(
            text_of(&seen),
            text,
            "{id}: the answer, without the thinking"
        );
        let first_kind = runs(&seen).first().map(|run| run.0.clone());
        assert_eq!(
            first_kind.as_deref(),
            Some("reasoning"),
            "{id}: thinking first"
        );
    }
}
