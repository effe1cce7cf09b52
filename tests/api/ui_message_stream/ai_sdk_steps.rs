//! An agent's steps read by the real `ai` package: the SDK's own
//! `streamText` runs a two-step agent (a mock model that reasons, calls a
//! tool, then answers with its output; `tests/js/ai_sdk/agent_stream.mjs`),
//! its `toUIMessageStreamResponse()` body is piped into the broker as an
//! app would, and what `readUIMessageStream` assembles from the broker's UI
//! message stream, live and late, must be the message the SDK assembles
//! from its own stream: the same parts in the same steps (`step-start`),
//! the tool's answer in the step that called it.

use serde_json::{Value, json};

use super::{ai_sdk::Reader, create};
use crate::{generations::Upload, helpers::spawn_app};

/// The SDK's own agent: its UI message stream's body, and the message the
/// SDK assembles from it.
fn sdk_agent() -> (String, Value) {
    let printed = super::sdk_script("agent_stream.mjs");
    let body = printed["body"].as_str().expect("the body").to_owned();
    (body, printed["message"].clone())
}

/// A message's parts with what is only one stream's own left out: the ids
/// of reasoning parts (each stream numbers its parts its own way) and the
/// broker's progress part (every task has a progress, which the broker's
/// stream carries as a `data-progress` part; the SDK's stream has none).
pub(super) fn parts(message: &Value) -> Vec<Value> {
    let mut parts = message["parts"].as_array().expect("parts").clone();
    parts.retain(|part| part["type"] != "data-progress");
    for part in &mut parts {
        if part["type"] == "reasoning" {
            part.as_object_mut().expect("an object").remove("id");
        }
    }
    parts
}

#[actix_web::test]
async fn the_sdks_own_agent_piped_in_reads_back_as_the_sdks_own_message_live_and_late() {
    // Arrange: the SDK's agent, and a reader following the task before it
    // starts.
    let (body, sdk_message) = sdk_agent();
    let steps = parts(&sdk_message)
        .iter()
        .filter(|part| part["type"] == "step-start")
        .count();
    assert_eq!(
        steps, 2,
        "the SDK's own message has two steps: {sdk_message}"
    );
    let app = spawn_app().await;
    create(&app, "agent-gen", Some("chat-agent")).await;
    let mut live = Reader::start_with(&app, "task", "agent-gen", &["ai_sdk=7"]);
    live.until_snapshot(|_| true).await;

    // Act: the app pipes the SDK's response body into the broker.
    let answer = super::pipe_in(&app, "agent-gen", body).await;
    assert_eq!(answer["step_ends"], 2, "{answer}");
    assert_eq!(answer["tool_calls"], 1, "{answer}");
    assert_eq!(answer["tool_results"], 1, "{answer}");
    assert_eq!(answer["task"]["status"], "completed", "{answer}");

    // Assert: live and late, the SDK's own parts.
    let live = live.finish().await;
    assert_eq!(live["errors"], json!([]), "{live}");
    assert_eq!(parts(&live["message"]), parts(&sdk_message), "live");
    let late = Reader::start_with(&app, "task", "agent-gen", &["ai_sdk=7"])
        .finish()
        .await;
    assert_eq!(late["errors"], json!([]), "{late}");
    assert_eq!(parts(&late["message"]), parts(&sdk_message), "late");
}

/// A live stream often sends the `finish` right after a `finish-step` in
/// a packet of its own: the step's end still keeps the reason `finish`
/// says, as when both come in one read.
#[actix_web::test]
async fn a_finish_read_apart_from_its_finish_step_still_gives_the_step_its_reason() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "apart", None).await;
    let upload = Upload::start(&app, "apart", "text/event-stream");
    let parts = |parts: &[Value]| -> String {
        parts
            .iter()
            .map(|part| format!("data: {part}\n\n"))
            .collect()
    };

    // Act: the step, then (100 ms later, a read of its own) the finish.
    upload
        .send(&parts(&[
            json!({"type": "start"}),
            json!({"type": "start-step"}),
            json!({"type": "text-start", "id": "t"}),
            json!({"type": "text-delta", "id": "t", "delta": "Hi"}),
            json!({"type": "text-end", "id": "t"}),
            json!({"type": "finish-step"}),
        ]))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    upload
        .send(&parts(&[json!({"type": "finish", "finishReason": "stop"})]))
        .await;
    upload.send("data: [DONE]\n\n").await;
    let answer = upload.finish().await;

    // Assert
    assert_eq!(answer.status().as_u16(), 200);
    let events = super::read_task(&app, "apart", &[]).await;
    let step_ends: Vec<_> = events
        .iter()
        .filter(|event| event.is("step_end"))
        .map(|event| event.json()["result"]["finish_reason"].clone())
        .collect();
    assert_eq!(step_ends, [json!("stop")]);
}
