//! The integration guide's OpenAI-backed agent (`examples/openai_agent.mjs`),
//! run under Node against the broker and a loopback server speaking the
//! Chat Completions streaming wire format: the model first asks for a tool,
//! then answers with its output. Each model call is one step of one task
//! (`?ends=step`), the tool's answer is kept between them, and the agent
//! completes the task when the model answers without a tool.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::Command,
    sync::mpsc,
};

use crate::{
    helpers::{LONG, spawn_app},
    producers::{cancelled_mid_answer, json_request},
};

/// A Chat Completions endpoint playing a model that calls `weather` for
/// Oslo, then, once the conversation holds the tool's answer, answers.
/// Each request's JSON is reported.
async fn agent_model() -> (String, mpsc::UnboundedReceiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (report, requests) = mpsc::unbounded_channel();
    actix_rt::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let request = answer(socket).await;
            let _ = report.send(request);
        }
    });
    (base_url, requests)
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    })
    .to_string()
}

async fn answer(socket: TcpStream) -> Value {
    let (request, mut socket) = json_request(socket).await;
    let has_answer = request["messages"]
        .as_array()
        .is_some_and(|messages| messages.iter().any(|m| m["role"] == "tool"));
    let (mut events, finish, usage) = if has_answer {
        let words = ["It is -3 °C ", "and snowing ", "in Oslo."];
        let text = words.map(|word| chunk(json!({ "content": word }), None));
        (text.to_vec(), "stop", (40, 9))
    } else {
        let call = json!({ "tool_calls": [{ "index": 0, "id": "call_1", "type": "function",
            "function": { "name": "weather", "arguments": "{\"city\":" } }] });
        let rest =
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "\"Oslo\"}" } }] });
        let events = vec![
            chunk(
                json!({ "role": "assistant", "content": "Let me look." }),
                None,
            ),
            chunk(call, None),
            chunk(rest, None),
        ];
        (events, "tool_calls", (25, 12))
    };
    events.push(chunk(json!({}), Some(finish)));
    events.push(
        json!({ "id": "c1", "object": "chat.completion.chunk", "choices": [],
            "usage": { "prompt_tokens": usage.0, "completion_tokens": usage.1 } })
        .to_string(),
    );
    events.push("[DONE]".into());
    let body: String = events
        .iter()
        .map(|data| format!("data: {data}\n\n"))
        .collect();
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    socket
        .write_all(format!("{head}{body}").as_bytes())
        .await
        .expect("the answer is written");
    request
}

#[actix_web::test]
async fn the_openai_agent_answers_in_two_steps_of_one_task_with_the_tools_answer_between() {
    // Arrange
    let app = spawn_app().await;
    let (model_url, mut requests) = agent_model().await;

    // Act
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/openai_agent.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .arg("What is the weather in Oslo?")
        .env("BROKER_URL", &app.address)
        .env("OPENAI_BASE_URL", &model_url)
        .env("OPENAI_API_KEY", "sk-test")
        .env("CHAT_ID", "chat-agent")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (installed by .ci/test.sh)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(LONG, lines.next_line()).await {
        printed.push(line);
    }
    let status = tokio::time::timeout(LONG, child.wait())
        .await
        .expect("the agent exits")
        .expect("its status");

    // Assert: done, in two model calls, the second told the tool's answer.
    assert_eq!(status.code(), Some(0), "{printed:?}");
    let task_id = printed[0]
        .rsplit("?task=")
        .next()
        .expect("?task=")
        .to_owned();
    let done: Value = serde_json::from_str(&printed[1]).expect("the completed task");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["steps"], 2, "{done}");
    let first = requests.recv().await.expect("the first call");
    assert_eq!(first["tools"][0]["function"]["name"], "weather");
    let second = requests.recv().await.expect("the second call");
    let told = second["messages"].as_array().expect("messages");
    assert!(
        told.iter()
            .any(|m| m["role"] == "tool" && m["tool_call_id"] == "call_1"),
        "{second}"
    );

    // The viewers' one answer: each step's text, the call, the step's end,
    // the tool's answer in place, then the end.
    let events = app
        .open_stream(&format!("/tasks/{task_id}/events"), &[])
        .await
        .read_to_end(LONG)
        .await;
    let seen: Vec<(String, Value)> = events
        .iter()
        .filter_map(|e| {
            let kind = e.event.clone()?;
            let data = e.json();
            match kind.as_str() {
                "text" => Some((kind, data["delta"].clone())),
                "tool_call" => Some((kind, data["input"].clone())),
                "tool_result" => Some((kind, data["output"].clone())),
                "step_end" => Some((kind, data["result"]["finish_reason"].clone())),
                "complete" => Some((kind, data["result"]["finish_reason"].clone())),
                _ => None,
            }
        })
        .collect();
    let expected = [
        ("text", json!("Let me look.")),
        ("tool_call", json!({ "city": "Oslo" })),
        ("step_end", json!("tool-calls")),
        (
            "tool_result",
            json!({ "city": "Oslo", "celsius": -3, "sky": "snow" }),
        ),
        ("text", json!("It is -3 °C and snowing in Oslo.")),
        ("step_end", json!("stop")),
        ("complete", json!("stop")),
    ]
    .map(|(kind, data)| (kind.to_owned(), data));
    assert_eq!(seen, expected);
    let usage: Vec<_> = events
        .iter()
        .filter(|e| e.is("step_end"))
        .map(|e| e.json()["result"]["usage"]["output_tokens"].clone())
        .collect();
    assert_eq!(usage, [json!(12), json!(9)], "each step's tokens, once");
}

/// A cancel mid-step answers the step's upload 409 at once; the agent must
/// then abort its model call at once too, not read the model's answer to
/// its end first (it reads the same stream, through a tee).
#[actix_web::test]
async fn a_cancel_mid_step_stops_the_agent_and_its_model_call_at_once() {
    let app = spawn_app().await;
    cancelled_mid_answer(&app, "openai_agent.mjs").await;
}
