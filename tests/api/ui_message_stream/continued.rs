//! A chat turn that continues an assistant message: the AI SDK's next
//! request after a tool approval, a denial or a page's own tool output,
//! which the SDK alone answers by continuing the message it has (the same
//! id; the approved call's output first). Here the continuation is a task created with `message_id`: the
//! chat that asked for it must end with one message, as the SDK's own chat
//! does, and a chat resuming it must rebuild the whole message, the
//! earlier task's parts first. Driven with the real `ai` package's Chat
//! (`tests/js/ai_sdk/continued_turn.mjs`).

use std::process::Command;

use serde_json::{Value, json};

use super::{
    UiStream,
    ai_sdk::{Reader, Upload, tests_js},
    create, delta, finish_step, progress, start, start_step, text_end, text_start,
};
use crate::{
    auth::{post_as, spawn_secured_app, token},
    cluster::harness::Node,
    helpers::{SHORT, TestApp, assert_error, spawn_app},
};

/// Why the chat continues its message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Turn {
    /// The person approves the tool's call; the app's server runs it.
    Approve,
    /// The person denies it.
    Deny,
    /// The page runs the tool itself (`addToolOutput`).
    PageTool,
}

/// `node continued_turn.mjs ARGS` for `turn`: its one JSON line; run off
/// the test's runtime, since the broker under test may be serving it.
async fn continued_turn(turn: Turn, args: Vec<String>) -> Value {
    let output = actix_web::rt::task::spawn_blocking(move || {
        let turn = match turn {
            Turn::Approve => "approve",
            Turn::Deny => "deny",
            Turn::PageTool => "page",
        };
        Command::new("node")
            .arg(tests_js().join("ai_sdk/continued_turn.mjs"))
            .args(args)
            .env("TURN", turn)
            .output()
            .expect("node runs (Debian's nodejs; .ci/test.sh installs it)")
    })
    .await
    .expect("the script's thread");
    assert!(
        output.status.success(),
        "the continued turn failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON line")
}

/// A message's parts, to compare two runs: the broker's progress part left
/// out, and of an approval only its decision (the SDK draws a new approval
/// id each run).
fn comparable_parts(message: &Value) -> Vec<Value> {
    let mut parts = message["parts"].as_array().expect("parts").clone();
    parts.retain(|part| part["type"] != "data-progress");
    for part in &mut parts {
        if let Some(approval) = part.get_mut("approval") {
            assert!(approval["id"].is_string(), "{approval}");
            approval.as_object_mut().expect("an object").remove("id");
        }
    }
    parts
}

/// The turns of the SDK's own chat: its final assistant message and the
/// UI message stream its app wrote for each of the two requests.
async fn sdk_alone(turn: Turn) -> (Value, Vec<String>) {
    let sdk = continued_turn(turn, vec!["sdk".into()]).await;
    assert_eq!(sdk["status"], "ready", "{sdk}");
    let messages = sdk["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "the SDK continues its message: {sdk}");
    let bodies = sdk["bodies"]
        .as_array()
        .expect("bodies")
        .iter()
        .map(|body| body.as_str().expect("a body").to_owned())
        .collect();
    (messages[1].clone(), bodies)
}

#[actix_web::test]
async fn an_approved_tools_turn_continues_the_chats_message_as_the_sdk_alone_does() {
    the_turn_continues_the_chats_message_as_the_sdk_alone_does(Turn::Approve).await;
}

#[actix_web::test]
async fn a_denied_tools_turn_continues_the_chats_message_as_the_sdk_alone_does() {
    the_turn_continues_the_chats_message_as_the_sdk_alone_does(Turn::Deny).await;
}

#[actix_web::test]
async fn a_page_tools_turn_continues_the_chats_message_as_the_sdk_alone_does() {
    the_turn_continues_the_chats_message_as_the_sdk_alone_does(Turn::PageTool).await;
}

async fn the_turn_continues_the_chats_message_as_the_sdk_alone_does(kind: Turn) {
    let (sdk_message, _) = sdk_alone(kind).await;
    let app = spawn_app().await;

    let turn = continued_turn(
        kind,
        vec![
            "broker".into(),
            app.address.clone(),
            "chat-continued".into(),
        ],
    )
    .await;

    assert_eq!(turn["status"], "ready", "{turn}");
    assert_eq!(turn["error"], Value::Null, "{turn}");
    let tasks = turn["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2, "a task per request: {turn}");
    assert_eq!(tasks[0]["message_id"], Value::Null);
    assert_eq!(
        tasks[1]["message_id"], tasks[0]["task_id"],
        "the second request continues the first task's message"
    );
    let messages = turn["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "one assistant message, not two: {turn}");
    assert_eq!(messages[1]["id"], tasks[0]["task_id"]);
    assert_eq!(
        comparable_parts(&messages[1]),
        comparable_parts(&sdk_message),
        "{kind:?}: the message the SDK alone ends with"
    );
}

#[actix_web::test]
async fn a_chat_resuming_an_approved_turn_rebuilds_the_whole_message_once() {
    a_resumed_turn_rebuilds_the_whole_message_once(Turn::Approve).await;
}

#[actix_web::test]
async fn a_chat_resuming_a_denied_turn_rebuilds_the_whole_message_once() {
    a_resumed_turn_rebuilds_the_whole_message_once(Turn::Deny).await;
}

#[actix_web::test]
async fn a_chat_resuming_a_page_tools_turn_rebuilds_the_whole_message_once() {
    a_resumed_turn_rebuilds_the_whole_message_once(Turn::PageTool).await;
}

async fn a_resumed_turn_rebuilds_the_whole_message_once(turn: Turn) {
    // Arrange: the first request's task, finished, waiting for the
    // approval; the second's, halfway through its answer.
    let (sdk_message, bodies) = sdk_alone(turn).await;
    let app = spawn_app().await;
    create(&app, "turn-1", Some("chat-resumed")).await;
    let first = app
        .api_client
        .post(app.url("/tasks/turn-1/stream"))
        .header("Content-Type", "text/event-stream")
        .body(bodies[0].clone())
        .send()
        .await
        .expect("upload sent");
    assert_eq!(first.status().as_u16(), 200);
    // The page's own tool's output is in its message only: the route
    // hands it over with the task.
    let mut continuing =
        json!({ "task_id": "turn-2", "chat_id": "chat-resumed", "message_id": "turn-1" });
    if turn == Turn::PageTool {
        let output = sdk_message["parts"][2]["output"].clone();
        assert_eq!(output["celsius"], -3, "the page's output: {sdk_message}");
        continuing["tool_results"] = json!([{ "id": "call-1", "output": output }]);
    }
    let created = app.post_json("/tasks", &continuing).await;
    assert_eq!(created.status().as_u16(), 201);
    let (before, after) = bodies[1]
        .split_once("data: {\"type\":\"text-delta\",\"id\":\"t2\",\"delta\":\"-3")
        .expect("the second answer's last delta");
    let upload = Upload::start_as(&app, "turn-2", "text/event-stream");
    upload.send_raw(before).await;

    // Act: what useChat({ resume: true }) does on mount, then the rest.
    let mut reader = Reader::start_with(&app, "resume", "chat-resumed", &["ai_sdk=7"]);
    reader
        .until_snapshot(|text| text == "Let me check.It is ")
        .await;
    upload
        .send_raw(&format!(
            "data: {{\"type\":\"text-delta\",\"id\":\"t2\",\"delta\":\"-3{after}"
        ))
        .await;
    assert_eq!(upload.finish().await, 200);

    // Assert
    let last = reader.finish().await;
    assert_eq!(last["status"], "ready", "{last}");
    assert_eq!(last["error"], Value::Null, "{last}");
    let messages = last["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{last}");
    assert_eq!(messages[0]["id"], "turn-1");
    assert_eq!(
        comparable_parts(&messages[0]),
        comparable_parts(&sdk_message),
        "{turn:?}: the whole message, each part once"
    );
}

/// `task` created by `as_token`, `text` written, and completed unless
/// `running`.
async fn task_as(app: &TestApp, as_token: &str, task: Value, text: &str, running: bool) {
    let id = task["task_id"].as_str().expect("an id").to_owned();
    let created = post_as(app, "/tasks", Some(&task), Some(as_token)).await;
    assert_eq!(created.status().as_u16(), 201, "{task}");
    let written = post_as(
        app,
        &format!("/tasks/{id}/text"),
        Some(&json!({ "delta": text })),
        Some(as_token),
    )
    .await;
    assert_eq!(written.status().as_u16(), 202);
    if !running {
        let completed = post_as(app, &format!("/tasks/{id}/complete"), None, Some(as_token)).await;
        assert_eq!(completed.status().as_u16(), 200);
    }
}

#[actix_web::test]
async fn another_projects_task_never_joins_a_rebuilt_message() {
    // Arrange: alice's message in p1 (two tasks); in the same chat and
    // naming the same message, a task of bob's project and one of none.
    let app = spawn_secured_app().await;
    let alice = token("alice", "subscribe publish", &["p1"]);
    let bob = token("bob", "subscribe publish", &["p2"]);
    let root = token("root", "subscribe publish", &["*"]);
    let task = |id: &str, project: Option<&str>, message: Option<&str>| json!({ "task_id": id, "project_id": project, "chat_id": "shared", "message_id": message });
    task_as(
        &app,
        &alice,
        task("first", Some("p1"), None),
        "Alice asks. ",
        false,
    )
    .await;
    task_as(
        &app,
        &bob,
        task("bobs", Some("p2"), Some("first")),
        "Bob's. ",
        false,
    )
    .await;
    task_as(
        &app,
        &root,
        task("nobodys", None, Some("first")),
        "None's. ",
        false,
    )
    .await;
    task_as(
        &app,
        &alice,
        task("second", Some("p1"), Some("first")),
        "Alice goes on.",
        true,
    )
    .await;

    // Act
    let authorization = format!("Bearer {alice}");
    let mut stream = UiStream::open_with(
        &app,
        "/chats/shared/stream",
        &[("Authorization", authorization.as_str())],
    )
    .await;

    // Assert: alice's two tasks as one message, nothing of the others.
    let text_2 = |phase: &str| json!({ "type": format!("text-{phase}"), "id": "text-2" });
    let mut delta_2 = text_2("delta");
    delta_2["delta"] = json!("Alice goes on.");
    assert_eq!(
        stream.take(10).await,
        [
            start("first"),
            start_step(),
            text_start(),
            delta("Alice asks. "),
            text_end(),
            finish_step(),
            start_step(),
            text_2("start"),
            delta_2,
            progress(0.0, None),
        ]
    );
    let completed = post_as(&app, "/tasks/second/complete", None, Some(&alice)).await;
    assert_eq!(completed.status().as_u16(), 200);
    assert_eq!(
        stream.read_to_end(SHORT).await,
        [
            text_2("end"),
            finish_step(),
            progress(100.0, None),
            json!({ "type": "finish" }),
            json!(super::DONE),
        ]
    );
}

#[actix_web::test]
async fn a_message_id_is_an_id_and_the_task_shows_it() {
    let app = spawn_app().await;
    for bad in [json!(""), json!("a b"), json!("x".repeat(129)), json!(7)] {
        let refused = app
            .post_json("/tasks", &json!({ "chat_id": "c", "message_id": bad }))
            .await;
        let status = refused.status().as_u16();
        if bad.is_string() {
            assert_error(refused, 400, "invalid_message_id").await;
        } else {
            assert_eq!(status, 422, "a wrong type: {bad}");
        }
    }
    let created = app
        .post_json(
            "/tasks",
            &json!({ "chat_id": "c", "message_id": "msg-1_A" }),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    let task: Value = created.json().await.expect("the task");
    assert_eq!(task["message_id"], "msg-1_A");
    let id = task["task_id"].as_str().expect("an id");
    assert_eq!(
        app.get_json(&format!("/tasks/{id}")).await["message_id"],
        "msg-1_A"
    );
    let mut stream = UiStream::open(&app, &format!("/tasks/{id}/ui-message-stream")).await;
    assert_eq!(stream.take(1).await, [start("msg-1_A")]);
    // Answers go with a message to continue, and are answers.
    let answer = json!({ "id": "call-1", "output": 1 });
    let many: Vec<Value> = (0..65).map(|_| answer.clone()).collect();
    for (body, says) in [
        (json!({ "tool_results": [answer] }), "give its message_id"),
        (
            json!({ "message_id": "m", "tool_results": [{ "id": "c", "output": 1, "error": "e" }] }),
            "one of output, error and denied",
        ),
        (
            json!({ "message_id": "m", "tool_results": many }),
            "at most 64",
        ),
        (
            json!({ "message_id": "m", "tool_results": [{ "output": 1 }] }),
            "id",
        ),
    ] {
        let refused = app.post_json("/tasks", &body).await;
        assert_eq!(refused.status().as_u16(), 422, "{body}");
        let error: Value = refused.json().await.expect("an error body");
        assert_eq!(error["error"]["code"], "invalid_field", "{error}");
        let message = error["error"]["message"].as_str().expect("a message");
        assert!(message.contains(says), "{message}");
    }
}

#[actix_web::test]
async fn unfinished_tasks_of_a_message_take_no_place_among_its_earlier_parts() {
    // Arrange: the message's first task, then as many strays of it left
    // pending as a resume sends earlier tasks, then a finished one.
    let app = spawn_app().await;
    let task = |id: &str, message: Option<&str>| json!({ "task_id": id, "chat_id": "strays", "message_id": message });
    let write_and_end = |id: &'static str, text: &'static str, end: bool| {
        let app = &app;
        async move {
            super::write(app, id, text).await;
            if end {
                let completed = app
                    .post_json(&format!("/tasks/{id}/complete"), &json!({}))
                    .await;
                assert_eq!(completed.status().as_u16(), 200);
            }
        }
    };
    assert_eq!(
        app.post_json("/tasks", &task("first", None)).await.status(),
        201
    );
    write_and_end("first", "First. ", true).await;
    for n in 0..64 {
        let stray = task(&format!("stray-{n}"), Some("first"));
        assert_eq!(app.post_json("/tasks", &stray).await.status(), 201);
    }
    assert_eq!(
        app.post_json("/tasks", &task("later", Some("first")))
            .await
            .status(),
        201
    );
    write_and_end("later", "Later. ", true).await;
    assert_eq!(
        app.post_json("/tasks", &task("latest", Some("first")))
            .await
            .status(),
        201
    );
    write_and_end("latest", "Latest.", false).await;

    // Act
    let mut stream = UiStream::open(&app, "/chats/strays/stream").await;

    // Assert: each finished earlier task's text, then the running one's.
    let mut texts = Vec::new();
    while texts.len() < 3 {
        let part = stream.next_part(SHORT).await.expect("the rebuilt message");
        if part["type"] == "text-delta" {
            texts.push(part["delta"].as_str().expect("a delta").to_owned());
        }
    }
    assert_eq!(texts, ["First. ", "Later. ", "Latest."]);
}

#[actix_web::test]
async fn in_a_cluster_on_postgres_another_instance_rebuilds_a_continued_message() {
    // Arrange: two instances on one PostgreSQL database and one Redis; the
    // message's first task written through a, its continuation created on b
    // with the answer the page gave the first task's call.
    let (_db, a, b) = super::two_instances().await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post =
        |node: &Node, path: &str, body: Value| client.post(node.url(path)).json(&body).send();
    let created = post(&a, "/tasks", json!({ "task_id": "t-1", "chat_id": "c" }))
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let lines = [
        json!({ "delta": "First. " }),
        json!({ "tool_call": { "id": "c1", "name": "locate", "input": {} } }),
        json!({ "complete": {} }),
    ]
    .map(|line| format!("{line}\n"))
    .concat();
    let uploaded = client
        .post(a.url("/tasks/t-1/stream"))
        .header("Content-Type", "application/x-ndjson")
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status().as_u16(), 200);
    let continuing = json!({
        "task_id": "t-2", "chat_id": "c", "message_id": "t-1",
        "tool_results": [{ "id": "c1", "output": { "lat": 59.9 } }],
    });
    let created = post(&b, "/tasks", continuing).await.unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let task: Value = created.json().await.unwrap();
    assert_eq!(task["status"], "running", "its answers began it: {task}");
    let written = post(&a, "/tasks/t-2/text", json!({ "delta": "Second." }))
        .await
        .unwrap();
    assert_eq!(written.status().as_u16(), 202);

    // Act
    let response = client.get(b.url("/chats/c/stream")).send().await.unwrap();
    let mut on_b = UiStream::new(response, "/chats/c/stream on b");

    // Assert: the first task's parts, the page's answer, then the second's.
    let text_2 = |phase: &str| json!({ "type": format!("text-{phase}"), "id": "text-2" });
    let mut second = text_2("delta");
    second["delta"] = json!("Second.");
    assert_eq!(
        on_b.take(12).await,
        [
            start("t-1"),
            start_step(),
            text_start(),
            delta("First. "),
            text_end(),
            json!({ "type": "tool-input-available", "toolCallId": "c1", "toolName": "locate", "input": {} }),
            finish_step(),
            json!({ "type": "tool-output-available", "toolCallId": "c1", "output": { "lat": 59.9 } }),
            start_step(),
            text_2("start"),
            second,
            progress(0.0, None),
        ]
    );
    let on_a: Value = client
        .get(a.url("/tasks/t-2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(on_a["message_id"], "t-1");
}

#[actix_web::test]
async fn the_chat_that_asked_gets_answers_to_its_messages_calls_and_to_no_other() {
    // Arrange: a message's first task with a call; its continuation made
    // with the page's answer, an answer to a call of no task, and the
    // answer again.
    let app = spawn_app().await;
    create(&app, "asked-1", Some("asking")).await;
    let lines = [
        json!({ "delta": "Let me look. " }),
        json!({ "tool_call": { "id": "c1", "name": "locate", "input": {} } }),
        json!({ "complete": {} }),
    ]
    .map(|line| format!("{line}\n"))
    .concat();
    let uploaded = app
        .api_client
        .post(app.url("/tasks/asked-1/stream"))
        .header("Content-Type", "application/x-ndjson")
        .body(lines)
        .send()
        .await
        .expect("upload sent");
    assert_eq!(uploaded.status().as_u16(), 200);
    let answers = json!([
        { "id": "nobodys", "output": 0 },
        { "id": "c1", "output": { "lat": 1 } },
        { "id": "c1", "output": { "lat": 1 } },
    ]);
    let created = app
        .post_json(
            "/tasks",
            &json!({ "task_id": "asked-2", "chat_id": "asking", "message_id": "asked-1", "tool_results": answers }),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    super::write(&app, "asked-2", "Found it.").await;

    // Act: what the route answers the chat with.
    let mut stream = UiStream::open(&app, "/tasks/asked-2/ui-message-stream").await;

    // Assert
    assert_eq!(
        stream.take(6).await,
        [
            start("asked-1"),
            json!({ "type": "tool-output-available", "toolCallId": "c1", "output": { "lat": 1 } }),
            start_step(),
            json!({ "type": "text-start", "id": "text-2" }),
            json!({ "type": "text-delta", "id": "text-2", "delta": "Found it." }),
            progress(0.0, None),
        ]
    );
}
