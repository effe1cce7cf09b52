//! The integration guide's OpenAI-backed producer
//! (`examples/openai_producer.mjs`), run under Node against the broker: it
//! pipes a Chat Completions stream into the upload, and when a user cancels
//! it stops the model call. The model provider is a loopback server speaking
//! the Chat Completions streaming wire format (the real one costs money and
//! is not reachable from the tests).

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    sync::mpsc,
};

use crate::helpers::{LONG, SHORT, TestApp, eventually, spawn_app};

/// How a streamed completion ended, as the provider saw it.
#[derive(Debug, PartialEq)]
enum Served {
    /// Every chunk and `[DONE]` were written.
    Whole,
    /// The client went away after this many chunks.
    ClientLeft(usize),
    /// The provider broke the connection off after this many chunks.
    CutOff(usize),
}

/// A Chat Completions endpoint that streams `tokens`, one chunk every
/// `gap`, and reports how each response ended.
async fn provider(tokens: Vec<String>, gap: Duration) -> (String, mpsc::UnboundedReceiver<Served>) {
    provider_cutting_off(tokens, gap, None).await
}

/// [`provider`], breaking each response off (no last chunk, the socket
/// closed) after `cut_after` chunks when given.
async fn provider_cutting_off(
    tokens: Vec<String>,
    gap: Duration,
    cut_after: Option<usize>,
) -> (String, mpsc::UnboundedReceiver<Served>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (report, served) = mpsc::unbounded_channel();
    actix_rt::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let outcome = serve_completion(socket, &tokens, gap, cut_after).await;
            let _ = report.send(outcome);
        }
    });
    (base_url, served)
}

/// Reads one HTTP request with a JSON body off `socket`: the body, and the
/// socket to answer on.
pub(crate) async fn json_request(socket: TcpStream) -> (serde_json::Value, TcpStream) {
    let mut reader = BufReader::new(socket);
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("a request head");
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = value.trim().parse().expect("a length");
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut request = vec![0; content_length];
    reader.read_exact(&mut request).await.expect("the request");
    let request = serde_json::from_slice(&request).expect("JSON");
    (request, reader.into_inner())
}

async fn serve_completion(
    socket: TcpStream,
    tokens: &[String],
    gap: Duration,
    cut_after: Option<usize>,
) -> Served {
    let (request, mut socket) = json_request(socket).await;
    assert_eq!(request["stream"], true, "the producer asks for a stream");
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                transfer-encoding: chunked\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return Served::ClientLeft(0);
    }
    let role = r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
    let mut events = vec![role.to_owned()];
    events.extend(tokens.iter().map(|token| {
        match token.strip_prefix(PROVIDER_ERROR) {
            // The provider gives up mid-answer, as OpenAI-compatible APIs say it.
            Some(message) => serde_json::json!({"error": {"message": message}}).to_string(),
            // A chunk the broker cannot take: its content is no text.
            None if token == REFUSED_CHUNK => {
                r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":7}}]}"#.to_owned()
            }
            None => serde_json::json!({
                "id": "c1",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": null}],
            })
            .to_string(),
        }
    }));
    events.push(r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.into());
    // OpenAI counts the tokens after the finish, when asked to.
    if request["stream_options"]["include_usage"] == true {
        let usage = serde_json::json!({
            "id": "c1",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": tokens.len(), "total_tokens": 7 + tokens.len()},
        });
        events.push(usage.to_string());
    }
    events.push("[DONE]".into());
    for (sent, data) in events.iter().enumerate() {
        if cut_after == Some(sent) {
            return Served::CutOff(sent);
        }
        let event = format!("data: {data}\n\n");
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        if socket.write_all(chunk.as_bytes()).await.is_err() {
            return Served::ClientLeft(sent.saturating_sub(1));
        }
        tokio::time::sleep(gap).await;
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    Served::Whole
}

/// A token that the test provider sends as an error event instead, with
/// the rest of it as the message.
const PROVIDER_ERROR: &str = "\u{0}error:";

/// A token that the test provider sends as a chunk the broker refuses.
const REFUSED_CHUNK: &str = "\u{0}refused";

/// `node examples/openai_producer.mjs` against `app` and `provider`.
fn producer(app: &TestApp, provider: &str) -> Child {
    example(app, provider, "openai_producer.mjs")
}

/// `node examples/SCRIPT` against `app` and `provider`.
fn example(app: &TestApp, provider: &str, script: &str) -> Child {
    let script = format!("{}/examples/{script}", env!("CARGO_MANIFEST_DIR"));
    Command::new("node")
        .arg(script)
        .arg("Explain Server-Sent Events")
        .env("BROKER_URL", &app.address)
        .env("OPENAI_BASE_URL", provider)
        .env("OPENAI_API_KEY", "sk-test")
        .env("CHAT_ID", "chat-1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (installed by .ci/test.sh)")
}

/// The task id the producer prints first (`URL/?task=ID`).
async fn task_id_of(
    child: &mut Child,
) -> (
    String,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(LONG, lines.next_line())
        .await
        .expect("the producer prints its task")
        .expect("stdout")
        .expect("a line");
    let id = first.rsplit("?task=").next().expect("?task=").to_owned();
    (id, lines)
}

async fn exit_code(child: &mut Child) -> i32 {
    tokio::time::timeout(LONG, child.wait())
        .await
        .expect("the producer exits")
        .expect("its status")
        .code()
        .expect("an exit code")
}

#[actix_web::test]
async fn the_openai_producer_pipes_a_completion_into_a_task() {
    // Arrange
    let app = spawn_app().await;
    let tokens: Vec<String> = ["Events ", "flow ", "one ", "way, ", "ünïcode ", "intact."]
        .map(String::from)
        .into();
    let (provider_url, mut served) = provider(tokens.clone(), Duration::from_millis(30)).await;

    // Act
    let mut child = producer(&app, &provider_url);
    let (task_id, mut stdout) = task_id_of(&mut child).await;
    let mut viewer = app
        .open_stream(&format!("/tasks/{task_id}/events"), &[])
        .await;
    let events = viewer.read_to_end(LONG).await;

    // Assert
    assert_eq!(exit_code(&mut child).await, 0);
    let answer: serde_json::Value =
        serde_json::from_str(&stdout.next_line().await.unwrap().expect("the answer")).unwrap();
    assert_eq!(answer["task"]["status"], "completed", "{answer}");
    assert_eq!(answer["task"]["chat_id"], "chat-1", "{answer}");
    assert_eq!(answer["deltas"], tokens.len(), "{answer}");
    let ending = serde_json::json!({
        "finish_reason": "stop",
        "provider_finish_reason": "stop",
        "usage": {"input_tokens": 7, "output_tokens": tokens.len(), "total_tokens": 7 + tokens.len()},
    });
    assert_eq!(
        answer["task"]["result"], ending,
        "the producer gets back the end of the stream it piped in"
    );
    let text: String = events
        .iter()
        .filter(|e| e.is("text"))
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, tokens.concat(), "the viewer's text is exact");
    assert!(events.last().unwrap().is("complete"), "{events:?}");
    assert_eq!(served.recv().await, Some(Served::Whole));
}

/// A provider that reports an error mid-answer (a `data: {"error"}` event,
/// answered 200) fails the task; the producer says so by its exit status,
/// 1, not 0.
#[actix_web::test]
async fn a_provider_error_mid_answer_fails_the_task_and_the_producer_exits_1() {
    let app = spawn_app().await;
    let tokens = vec![
        "Half ".to_owned(),
        format!("{PROVIDER_ERROR}overloaded"),
        "never".to_owned(),
    ];
    let (provider_url, _served) = provider(tokens, Duration::from_millis(10)).await;

    let mut child = producer(&app, &provider_url);
    let (task_id, mut stdout) = task_id_of(&mut child).await;
    let code = exit_code(&mut child).await;

    // The upload is answered 200 with the failed task, or, when the lines
    // after the error reached the broker first, 409 `task_finished`: either
    // way the producer reports a failure.
    let answer: serde_json::Value =
        serde_json::from_str(&stdout.next_line().await.unwrap().expect("the answer")).unwrap();
    assert!(
        answer["task"]["status"] == "failed" || answer["error"]["code"] == "task_finished",
        "{answer}"
    );
    assert_eq!(code, 1, "exit status 1, failed: {answer}");
    let task = app.get_json(&format!("/tasks/{task_id}")).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"], "overloaded", "{task}");
}

/// A chunk the broker refuses (422: the lines before it are applied) ends
/// the task as failed at once, with the broker's words, rather than leave
/// it running until the orphan timeout; each example exits 1.
#[actix_web::test]
async fn a_chunk_the_broker_refuses_fails_the_task_and_the_producer_exits_1() {
    let app = spawn_app().await;
    for script in ["openai_producer.mjs", "openai_agent.mjs"] {
        let tokens = vec![
            "Half ".to_owned(),
            REFUSED_CHUNK.to_owned(),
            "never".to_owned(),
        ];
        let (provider_url, _served) = provider(tokens, Duration::from_millis(10)).await;

        let mut child = example(&app, &provider_url, script);
        let (task_id, _stdout) = task_id_of(&mut child).await;
        let code = exit_code(&mut child).await;

        assert_eq!(code, 1, "{script}");
        let task = app.get_json(&format!("/tasks/{task_id}")).await;
        assert_eq!(task["status"], "failed", "{script}: {task}");
        let error = task["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("the broker refused the model's stream: line "),
            "{script}: {error}"
        );
    }
}

#[actix_web::test]
async fn a_cancel_stops_the_producer_and_its_model_call() {
    let app = spawn_app().await;
    cancelled_mid_answer(&app, "openai_producer.mjs").await;
}

/// Runs `node examples/SCRIPT` against a long, slow completion, cancels
/// its task once text arrives, and asserts that the script learns at once
/// (exit status 3) and hangs up on the model (well before its 40 s).
pub(crate) async fn cancelled_mid_answer(app: &TestApp, script: &str) {
    // Arrange
    let tokens: Vec<String> = (0..2000).map(|n| format!("t{n} ")).collect();
    let (provider_url, mut served) = provider(tokens, Duration::from_millis(20)).await;
    let mut child = example(app, &provider_url, script);
    let (task_id, _stdout) = task_id_of(&mut child).await;
    eventually(SHORT, "text arrives", || async {
        let task = app.get_json(&format!("/tasks/{task_id}")).await;
        (task["status"] == "running").then_some(())
    })
    .await;

    // Act
    let cancel = app
        .post_json(&format!("/tasks/{task_id}/cancel"), &serde_json::json!({}))
        .await;
    assert_eq!(cancel.status().as_u16(), 200);

    // Assert
    assert_eq!(
        exit_code(&mut child).await,
        3,
        "{script}: exit status 3, cancelled"
    );
    let outcome = tokio::time::timeout(SHORT, served.recv())
        .await
        .expect("the model's response ends soon after the cancel")
        .expect("an outcome");
    match outcome {
        Served::ClientLeft(chunks) => assert!(chunks < 1000, "left after {chunks} chunks"),
        other => panic!("{script}: the model call ended otherwise after the cancel: {other:?}"),
    }
}

#[actix_web::test]
async fn a_model_stream_broken_off_fails_the_task_with_why() {
    let app = spawn_app().await;
    for script in ["openai_producer.mjs", "openai_agent.mjs"] {
        model_stream_broken_off(&app, script).await;
    }
}

/// Runs `node examples/SCRIPT` against a completion the provider breaks off
/// after a few chunks (no `[DONE]`, no finish): the script must fail the
/// task, saying so, keep the text that arrived, and exit 1, rather than
/// leave the task running for the orphan timeout.
async fn model_stream_broken_off(app: &TestApp, script: &str) {
    // Arrange
    let tokens: Vec<String> = (0..50).map(|n| format!("t{n} ")).collect();
    let (provider_url, mut served) =
        provider_cutting_off(tokens.clone(), Duration::from_millis(10), Some(6)).await;

    // Act
    let mut child = example(app, &provider_url, script);
    let (task_id, _stdout) = task_id_of(&mut child).await;
    let code = exit_code(&mut child).await;

    // Assert
    assert_eq!(served.recv().await, Some(Served::CutOff(6)));
    assert_eq!(code, 1, "{script}: exit status 1, failed");
    let task = app.get_json(&format!("/tasks/{task_id}")).await;
    assert_eq!(task["status"], "failed", "{script}: {task}");
    let error = task["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("the model's stream broke off"),
        "{script}: {task}"
    );
    let mut viewer = app
        .open_stream(&format!("/tasks/{task_id}/events"), &[])
        .await;
    let events = viewer.read_to_end(LONG).await;
    let text: String = events
        .iter()
        .filter(|e| e.is("text"))
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect();
    // The role chunk, then five tokens, arrived before the cut.
    assert_eq!(
        text,
        tokens[..5].concat(),
        "{script}: the text that arrived is kept"
    );
    let last = events.last().unwrap();
    assert!(last.is("error"), "{script}: {events:?}");
    assert_eq!(last.json()["error"], task["error"], "{script}");
}
