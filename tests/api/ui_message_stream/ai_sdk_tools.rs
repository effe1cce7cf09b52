//! A generation's tool calls read by the real `ai` package: the UI
//! message stream's `tool-input-available`, `tool-output-available` and
//! `tool-output-error` parts, between the text parts, assembled by
//! `readUIMessageStream` into the tool parts a chat UI renders (`tool-`
//! and the tool's name, with its state, input and output), live and for a
//! reader who comes after the generation ended.

use serde_json::{Value, json};

use super::{
    ai_sdk::{Reader, Upload},
    create,
};
use crate::helpers::spawn_app;

/// The message's text and tool parts, as a chat UI renders them (the
/// progress part and step markers left out).
fn rendered(message: &Value) -> Vec<Value> {
    message["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter_map(|part| {
            let kind = part["type"].as_str().unwrap_or_default();
            if kind == "text" {
                return Some(json!({ "text": part["text"], "state": part["state"] }));
            }
            kind.starts_with("tool-").then(|| {
                json!({
                    "type": kind,
                    "toolCallId": part["toolCallId"],
                    "state": part["state"],
                    "input": part["input"],
                    "output": part["output"],
                    "errorText": part["errorText"],
                })
            })
        })
        .collect()
}

#[actix_web::test]
async fn the_ai_package_assembles_tool_calls_and_results_between_the_text_live_and_late() {
    // Arrange: the package is reading before the model says anything.
    let app = spawn_app().await;
    create(&app, "tool-gen", Some("chat-tools")).await;
    let mut live = Reader::start(&app, "task", "tool-gen");
    live.until_snapshot(|_| true).await;

    // Act: text, a call and its output, a call whose tool failed, text.
    let upload = Upload::start(&app, "tool-gen");
    for line in [
        json!({ "delta": "Let me check." }),
        json!({ "tool_call": { "id": "c1", "name": "weather", "input": { "city": "Oslo" } } }),
        json!({ "tool_result": { "id": "c1", "output": { "celsius": -3 } } }),
        json!({ "tool_call": { "id": "c2", "name": "forecast", "input": {} } }),
        json!({ "tool_result": { "id": "c2", "error": "service down" } }),
        // A result for a call never made: kept on the task stream, but the
        // package would refuse it, so the UI stream leaves it out.
        json!({ "tool_result": { "id": "c9", "output": 1 } }),
        json!({ "delta": "It is cold." }),
        json!({ "complete": {} }),
    ] {
        upload.send(line).await;
    }
    assert_eq!(upload.finish().await, 200);

    // Assert: the text, the two tool parts in their states, the text.
    let expected = vec![
        json!({ "text": "Let me check.", "state": "done" }),
        json!({
            "type": "tool-weather", "toolCallId": "c1", "state": "output-available",
            "input": { "city": "Oslo" }, "output": { "celsius": -3 }, "errorText": null,
        }),
        json!({
            "type": "tool-forecast", "toolCallId": "c2", "state": "output-error",
            "input": {}, "output": null, "errorText": "service down",
        }),
        json!({ "text": "It is cold.", "state": "done" }),
    ];
    let live = live.finish().await;
    assert_eq!(live["errors"], json!([]), "{live}");
    assert_eq!(rendered(&live["message"]), expected, "{live}");
    let late = Reader::start(&app, "task", "tool-gen").finish().await;
    assert_eq!(late["errors"], json!([]), "{late}");
    assert_eq!(rendered(&late["message"]), expected, "{late}");
}

#[actix_web::test]
async fn the_ai_sdks_tool_flags_piped_in_reach_the_ai_package_reading_the_task() {
    // Arrange: an app's UI message stream (as JSON lines) with a tool the
    // provider ran, an MCP tool streaming its output, a refused input.
    let app = spawn_app().await;
    create(&app, "flag-gen", None).await;
    let upload = Upload::start(&app, "flag-gen");
    for part in [
        json!({ "type": "tool-input-available", "toolCallId": "ws1", "toolName": "web_search", "input": { "q": "x" }, "providerExecuted": true }),
        json!({ "type": "tool-output-available", "toolCallId": "ws1", "output": { "hits": 2 }, "providerExecuted": true }),
        json!({ "type": "tool-input-available", "toolCallId": "m1", "toolName": "mcp_lookup", "input": {}, "dynamic": true }),
        json!({ "type": "tool-output-available", "toolCallId": "m1", "output": { "step": 1 }, "preliminary": true, "dynamic": true }),
        json!({ "type": "tool-output-available", "toolCallId": "m1", "output": { "step": 2 }, "dynamic": true }),
        json!({ "type": "tool-input-error", "toolCallId": "w1", "toolName": "weather", "input": { "city": 42 }, "errorText": "city must be a string" }),
        json!({ "type": "finish" }),
    ] {
        upload.send(part).await;
    }
    assert_eq!(upload.finish().await, 200);

    // Act
    let read = Reader::start(&app, "task", "flag-gen").finish().await;

    // Assert: the parts the SDK's own stream would have made.
    assert_eq!(read["errors"], json!([]), "{read}");
    let tools: Vec<Value> = read["message"]["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|part| part.get("toolCallId").is_some())
        .map(|part| {
            json!({
                "type": part["type"], "toolCallId": part["toolCallId"], "state": part["state"],
                "providerExecuted": part["providerExecuted"], "output": part["output"],
                "preliminary": part["preliminary"], "errorText": part["errorText"],
            })
        })
        .collect();
    assert_eq!(
        tools,
        [
            json!({ "type": "tool-web_search", "toolCallId": "ws1", "state": "output-available", "providerExecuted": true, "output": { "hits": 2 }, "preliminary": null, "errorText": null }),
            json!({ "type": "dynamic-tool", "toolCallId": "m1", "state": "output-available", "providerExecuted": null, "output": { "step": 2 }, "preliminary": null, "errorText": null }),
            json!({ "type": "tool-weather", "toolCallId": "w1", "state": "output-error", "providerExecuted": null, "output": null, "preliminary": null, "errorText": "city must be a string" }),
        ],
        "{read}"
    );
}

#[actix_web::test]
async fn a_call_waiting_for_approval_then_denied_reaches_an_ai_7_reader_and_an_ai_5_reader_unbroken()
 {
    // Arrange: an app's stream with a tool that needs a person's approval.
    let app = spawn_app().await;
    create(&app, "approval-gen", None).await;
    let upload = Upload::start(&app, "approval-gen");
    for part in [
        json!({ "type": "tool-input-available", "toolCallId": "d1", "toolName": "delete_file", "input": { "path": "/tmp/x" } }),
        json!({ "type": "tool-approval-request", "approvalId": "ap1", "toolCallId": "d1" }),
        json!({ "type": "tool-output-denied", "toolCallId": "d1" }),
        json!({ "type": "finish" }),
    ] {
        upload.send(part).await;
    }
    assert_eq!(upload.finish().await, 200);

    // Act: a reader that says it runs ai 7, and one that says nothing (v5's stream).
    let v7 = Reader::start_with(&app, "task", "approval-gen", &["ai_sdk=7"])
        .finish()
        .await;
    let v5 = Reader::start(&app, "task", "approval-gen").finish().await;

    // Assert
    let tool = |read: &Value| -> Value {
        read["message"]["parts"]
            .as_array()
            .expect("parts")
            .iter()
            .find(|part| part["toolCallId"] == "d1")
            .cloned()
            .unwrap_or_else(|| panic!("no tool part: {read}"))
    };
    assert_eq!(v7["errors"], json!([]), "{v7}");
    let denied = tool(&v7);
    assert_eq!(denied["state"], "output-denied", "{denied}");
    assert_eq!(denied["approval"]["id"], "ap1", "{denied}");
    assert_eq!(v5["errors"], json!([]), "{v5}");
    let failed = tool(&v5);
    assert_eq!(failed["state"], "output-error", "{failed}");
    assert_eq!(failed["errorText"], "the tool call was denied", "{failed}");
}

/// The first part of `kind` in `message`.
fn part_of<'a>(message: &'a Value, kind: &str) -> &'a Value {
    message["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .find(|part| part["type"] == kind)
        .unwrap_or_else(|| panic!("a {kind} part in {message}"))
}

/// What the model's provider says of a call, a tool's answer, a source or
/// a file (`providerMetadata`: Gemini's thought signature of a call, say)
/// is what the chat's next model call needs back from the saved message:
/// kept, and given to the `ai` package reading the task, live or late.
#[actix_web::test]
async fn provider_metadata_of_calls_results_sources_and_files_reaches_the_ai_package() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "said-gen", None).await;
    let signed = json!({ "google": { "thoughtSignature": "TS1" } });
    let served = json!({ "openai": { "itemId": "ws_1" } });
    let cited = json!({ "perplexity": { "rank": 1 } });
    let made = json!({ "google": { "fileId": "f1" } });
    let upload = Upload::start(&app, "said-gen");
    for part in [
        json!({ "type": "tool-input-available", "toolCallId": "w1", "toolName": "weather", "input": { "city": "Oslo" }, "providerMetadata": signed }),
        json!({ "type": "tool-output-available", "toolCallId": "w1", "output": { "celsius": -3 }, "providerMetadata": served }),
        json!({ "type": "source-url", "sourceId": "s1", "url": "https://example.com/", "providerMetadata": cited }),
        json!({ "type": "file", "url": "data:text/plain;base64,aGk=", "mediaType": "text/plain", "providerMetadata": made }),
        json!({ "type": "finish" }),
    ] {
        upload.send(part).await;
    }
    assert_eq!(upload.finish().await, 200);

    // Act
    let read = Reader::start_with(&app, "task", "said-gen", &["ai_sdk=7"])
        .finish()
        .await;
    let v5 = Reader::start(&app, "task", "said-gen").finish().await;

    // Assert: as the SDK's reader files each part's providerMetadata; a v5
    // reader gets none on the tool's answer (ai 5.0's strict schema
    // refuses it there), and the rest.
    assert_eq!(read["errors"], json!([]), "{read}");
    assert_eq!(v5["errors"], json!([]), "{v5}");
    let v5_tool = part_of(&v5["message"], "tool-weather");
    assert_eq!(v5_tool["callProviderMetadata"], signed, "{v5_tool}");
    assert_eq!(v5_tool.get("resultProviderMetadata"), None, "{v5_tool}");
    let of = |kind: &str| part_of(&read["message"], kind);
    let tool = of("tool-weather");
    assert_eq!(tool["callProviderMetadata"], signed, "{tool}");
    assert_eq!(tool["resultProviderMetadata"], served, "{tool}");
    assert_eq!(of("source-url")["providerMetadata"], cited);
    assert_eq!(of("file")["providerMetadata"], made);
    // The task's own events keep it as `provider_metadata`.
    let history = app.get_json("/sse/history?event_types=tool_call").await;
    assert_eq!(
        history["events"][0]["data"]["provider_metadata"], signed,
        "{history}"
    );

    // A providerMetadata that is not an object of objects (one per
    // provider) is refused, as the SDK's reader would refuse the part.
    for (task, said) in [
        ("said-wrong", json!("x")),
        ("said-wrong-2", json!({ "openai": 5 })),
    ] {
        create(&app, task, None).await;
        let wrong = Upload::start(&app, task);
        wrong
            .send(json!({ "type": "source-url", "sourceId": "s1", "url": "https://e.com/", "providerMetadata": said }))
            .await;
        assert_eq!(wrong.finish().await, 422, "{said}");
    }
}

/// A producer writing the broker's own NDJSON lines says the same with
/// `provider_metadata` on a part's end and on a call: the `ai` package
/// reading the task gets it where the SDK's own stream would put it.
#[actix_web::test]
async fn an_ndjson_producers_provider_metadata_reaches_the_ai_package() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "said-ndjson", None).await;
    let signature = json!({ "anthropic": { "signature": "SIG-1" } });
    let thought = json!({ "google": { "thoughtSignature": "TS-1" } });
    let upload = Upload::start(&app, "said-ndjson");
    for line in [
        json!({ "reasoning": "Oslo, then." }),
        json!({ "reasoning_end": { "provider_metadata": signature } }),
        json!({ "delta": "Checking." }),
        json!({ "tool_call": { "id": "c1", "name": "forecast", "input": {}, "provider_metadata": thought } }),
        json!({ "complete": {} }),
    ] {
        upload.send(line).await;
    }
    assert_eq!(upload.finish().await, 200);

    // Act
    let read = Reader::start(&app, "task", "said-ndjson").finish().await;

    // Assert
    assert_eq!(read["errors"], json!([]), "{read}");
    let of = |kind: &str| part_of(&read["message"], kind);
    assert_eq!(of("reasoning")["providerMetadata"], signature);
    assert_eq!(of("reasoning")["text"], "Oslo, then.");
    assert_eq!(of("text").get("providerMetadata"), None);
    assert_eq!(of("tool-forecast")["callProviderMetadata"], thought);
}

/// What an app says of its tools (`tool({ title, metadata })`, on the
/// stream's tool parts as `title` and `toolMetadata`) is what its chat UI
/// shows beside each call: kept, and given back to the `ai` package as the
/// SDK's own message has it, live and late; a v5 reader, whose schema has
/// neither, gets the parts without them.
#[actix_web::test]
async fn what_the_app_says_of_its_tools_reads_back_as_the_sdks_own_message() {
    // Arrange
    let printed = super::sdk_script("tool_labels_stream.mjs");
    let body = printed["body"].as_str().expect("the body").to_owned();
    let sdk_message = printed["message"].clone();
    let app = spawn_app().await;
    create(&app, "labelled", None).await;
    let mut live = Reader::start_with(&app, "task", "labelled", &["ai_sdk=7"]);
    live.until_snapshot(|_| true).await;

    // Act
    let answer = super::pipe_in(&app, "labelled", body).await;

    // Assert
    assert_eq!(answer["task"]["status"], "completed", "{answer}");
    let sdk_tools = tool_parts(&sdk_message);
    assert_eq!(sdk_tools.len(), 2);
    assert!(
        sdk_tools.iter().all(|tool| tool.get("title").is_some()),
        "{sdk_tools:?}"
    );
    let live = live.finish().await;
    assert_eq!(live["errors"], json!([]), "{live}");
    assert_eq!(tool_parts(&live["message"]), sdk_tools, "live");
    let late = Reader::start_with(&app, "task", "labelled", &["ai_sdk=6"])
        .finish()
        .await;
    assert_eq!(late["errors"], json!([]), "{late}");
    assert_eq!(tool_parts(&late["message"]), sdk_tools, "late");
    let v5 = Reader::start(&app, "task", "labelled").finish().await;
    assert_eq!(v5["errors"], json!([]), "{v5}");
    for tool in tool_parts(&v5["message"]) {
        assert_eq!(tool.get("title"), None, "{tool}");
        assert_eq!(tool.get("toolMetadata"), None, "{tool}");
    }
    // NDJSON lines say them too; a title that is not a string is refused.
    create(&app, "labelled-nd", None).await;
    let lines = [
        json!({ "tool_call": { "id": "c1", "name": "weather", "title": "Current weather", "tool_metadata": { "icon": "sun" } } }),
        json!({ "tool_result": { "id": "c1", "output": 1, "tool_metadata": { "icon": "sun" } } }),
        json!({ "complete": {} }),
    ];
    let ndjson: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let response = app
        .api_client
        .post(app.url("/tasks/labelled-nd/stream"))
        .header("Content-Type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .expect("upload sent");
    assert_eq!(response.status().as_u16(), 200);
    let read = Reader::start_with(&app, "task", "labelled-nd", &["ai_sdk=7"])
        .finish()
        .await;
    let tool = part_of(&read["message"], "tool-weather");
    assert_eq!(tool["title"], "Current weather", "{tool}");
    assert_eq!(tool["toolMetadata"], json!({ "icon": "sun" }), "{tool}");
    create(&app, "labelled-bad", None).await;
    let wrong = Upload::start(&app, "labelled-bad");
    wrong
        .send(json!({ "type": "tool-input-available", "toolCallId": "c1", "toolName": "w", "input": {}, "title": 5 }))
        .await;
    assert_eq!(wrong.finish().await, 422);
}

/// The message's tool parts, whole.
fn tool_parts(message: &Value) -> Vec<Value> {
    message["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|part| {
            part["type"]
                .as_str()
                .unwrap_or_default()
                .starts_with("tool-")
        })
        .cloned()
        .collect()
}
