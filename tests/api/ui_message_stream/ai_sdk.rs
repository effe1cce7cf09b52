//! The UI message stream read by the real `ai` npm package (pinned in
//! tests/js/package.json, installed by `npm ci` there, which .ci/test.sh
//! runs before the Rust tests): `tests/js/ai_sdk/ui_stream_reader.mjs`
//! reads a broker's stream with the package's own parser, schema and
//! message assembly (`readUIMessageStream`, `DefaultChatTransport`, the
//! `AbstractChat` behind `useChat`) while the test uploads a generation,
//! and the message it assembles must be the uploaded text, byte for byte.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{create, end};
use crate::helpers::{LONG, TestApp, eventually, spawn_app};

/// Text that a careless encoder would break: line ends of every kind,
/// quotes, a would-be SSE field, non-ASCII and astral characters.
const PIECES: [&str; 8] = [
    "Hello",
    ", \"world\"",
    "\n\ndata: [DONE]\n\n",
    "\r\nline\rbreaks",
    " ünïcödé ",
    "🦀 crabs",
    "\u{2028}sep",
    " end.",
];

pub(super) fn tests_js() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// `node ui_stream_reader.mjs MODE BROKER ID`, its stdout read line by line.
pub(super) struct Reader {
    child: Child,
    lines: mpsc::UnboundedReceiver<Value>,
}

impl Reader {
    pub(super) fn start(app: &TestApp, mode: &str, id: &str) -> Self {
        Self::start_with(app, mode, id, &[])
    }

    /// As [`Reader::start`], `query` added to the broker's URL.
    pub(super) fn start_with(app: &TestApp, mode: &str, id: &str, query: &[&str]) -> Self {
        let package = tests_js().join("node_modules/ai/package.json");
        assert!(
            package.exists(),
            "{} is missing: run `npm ci` in tests/js (.ci/test.sh does, before the Rust tests)",
            package.display()
        );
        let mut child = Command::new("node")
            .arg(tests_js().join("ai_sdk/ui_stream_reader.mjs"))
            .args([mode, &app.address, id])
            .args(query)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs (Debian's nodejs; .ci/test.sh installs it)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("the reader printed {line:?}: {e}"));
                if sender.send(value).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next printed line, or a panic with the reader's stderr.
    async fn next(&mut self) -> Value {
        match tokio::time::timeout(LONG, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("the reader exited early: {}", self.stderr()),
            Err(_) => panic!("the reader printed nothing for {LONG:?}"),
        }
    }

    /// Waits for a snapshot of the message whose text parts satisfy `done`.
    pub(super) async fn until_snapshot(&mut self, done: impl Fn(&str) -> bool) {
        loop {
            let line = self.next().await;
            assert!(line.get("final").is_none(), "ended early: {line}");
            if done(&text_of(&line["snapshot"])) {
                return;
            }
        }
    }

    /// What the reader printed last, once it exits 0.
    pub(super) async fn finish(mut self) -> Value {
        let last = loop {
            let line = self.next().await;
            if let Some(last) = line.get("final") {
                break last.clone();
            }
        };
        let status = self.child.wait().expect("the reader exits");
        assert!(status.success(), "the reader failed: {}", self.stderr());
        last
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a UI message's text parts.
pub(super) fn text_of(message: &Value) -> String {
    message["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"] == "text")
        .map(|p| p["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The message's one text part.
fn text_part(message: &Value) -> &Value {
    let texts: Vec<&Value> = message["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| p["type"] == "text")
        .collect();
    assert_eq!(texts.len(), 1, "one text part: {message}");
    texts[0]
}

/// A generation uploaded through `POST /tasks/{id}/stream` (NDJSON), line by line.
pub(super) struct Upload {
    lines: mpsc::Sender<Result<Bytes, std::io::Error>>,
    answer: actix_rt::task::JoinHandle<u16>,
}

impl Upload {
    pub(super) fn start(app: &TestApp, id: &str) -> Self {
        Self::start_as(app, id, "application/x-ndjson")
    }

    /// An upload whose body is `content_type`, written with [`Self::send_raw`].
    pub(super) fn start_as(app: &TestApp, id: &str, content_type: &str) -> Self {
        let (lines, body) = mpsc::channel(16);
        let request = app
            .api_client
            .post(app.url(&format!("/tasks/{id}/stream")))
            .header("Content-Type", content_type)
            .body(reqwest::Body::wrap_stream(ReceiverStream::new(body)));
        let answer =
            actix_rt::spawn(
                async move { request.send().await.expect("upload sent").status().as_u16() },
            );
        Self { lines, answer }
    }

    pub(super) async fn send(&self, line: Value) {
        self.lines
            .send(Ok(Bytes::from(format!("{line}\n"))))
            .await
            .expect("the upload is open");
    }

    /// `text` as it is, as the next piece of the body.
    pub(super) async fn send_raw(&self, text: &str) {
        self.lines
            .send(Ok(Bytes::from(text.to_owned())))
            .await
            .expect("the upload is open");
    }

    async fn deltas(&self, pieces: &[&str]) {
        for piece in pieces {
            self.send(json!({ "delta": piece })).await;
        }
    }

    pub(super) async fn finish(self) -> u16 {
        drop(self.lines);
        self.answer.await.expect("the upload task")
    }
}

#[actix_web::test]
async fn the_ai_package_assembles_a_live_generation_byte_for_byte() {
    // Arrange: the package is reading before the first token.
    let app = spawn_app().await;
    create(&app, "live-gen", Some("chat-live")).await;
    let mut reader = Reader::start(&app, "task", "live-gen");
    reader.until_snapshot(|_| true).await;

    // Act
    let upload = Upload::start(&app, "live-gen");
    upload
        .send(json!({ "progress": 10, "stage": "writing" }))
        .await;
    upload.deltas(&PIECES).await;
    upload.send(json!({ "complete": {} })).await;
    assert_eq!(upload.finish().await, 200);

    // Assert
    let last = reader.finish().await;
    let message = &last["message"];
    assert_eq!(last["errors"], json!([]), "{last}");
    assert_eq!(message["id"], "live-gen");
    assert_eq!(message["role"], "assistant");
    let text = text_part(message);
    assert_eq!(text["text"], PIECES.concat(), "byte for byte");
    assert_eq!(text["state"], "done");
    let progress = message["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "data-progress")
        .collect::<Vec<_>>();
    assert_eq!(progress.len(), 1, "reconciled into one part: {message}");
    assert_eq!(progress[0]["data"]["progress"], 100.0, "{message}");
}

#[actix_web::test]
async fn use_chat_resuming_mid_generation_gets_the_whole_text_once() {
    // Arrange: half the text is written before the chat page (re)loads.
    let app = spawn_app().await;
    create(&app, "resumed-gen", Some("chat-r")).await;
    let upload = Upload::start(&app, "resumed-gen");
    upload.deltas(&PIECES[..4]).await;
    let first_half = PIECES[..4].concat();
    eventually(LONG, "the first text to be stored", || async {
        let task = app.get_json("/tasks/resumed-gen").await;
        (task["status"] == "running").then_some(())
    })
    .await;

    // Act: what useChat({ resume: true }) does on mount, then the rest.
    let mut reader = Reader::start(&app, "resume", "chat-r");
    reader
        .until_snapshot(|text| text.len() >= first_half.len())
        .await;
    upload.deltas(&PIECES[4..]).await;
    // Cut off at the token limit, as a provider's stream would say.
    let result = json!({ "result": { "finish_reason": "length" } });
    upload.send(json!({ "complete": result })).await;
    assert_eq!(upload.finish().await, 200);

    // Assert
    let last = reader.finish().await;
    let messages = last["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{last}");
    assert_eq!(messages[0]["id"], "resumed-gen");
    assert_eq!(
        messages[0]["metadata"],
        json!({ "finishReason": "length" }),
        "why the answer stopped reaches the message: {last}"
    );
    let text = text_part(&messages[0]);
    assert_eq!(
        text["text"],
        PIECES.concat(),
        "the text once, byte for byte"
    );
    assert_eq!(text["state"], "done");
    assert_eq!(last["status"], "ready", "{last}");
    assert_eq!(last["error"], Value::Null);
    assert_eq!(last["finish"]["isError"], false);
    assert_eq!(last["finish"]["isAbort"], false);
}

#[actix_web::test]
async fn the_transport_finds_nothing_to_resume_in_an_idle_chat() {
    let app = spawn_app().await;
    create(&app, "finished-gen", Some("chat-idle")).await;
    end(&app, "finished-gen", "complete", json!({})).await;

    for chat in ["chat-idle", "never-used"] {
        let reconnect = Reader::start(&app, "reconnect", chat).finish().await;
        assert_eq!(reconnect, json!({ "stream": null }), "{chat}");
        let resume = Reader::start(&app, "resume", chat).finish().await;
        assert_eq!(resume["messages"], json!([]), "{chat}: {resume}");
        assert_eq!(resume["status"], "ready");
    }
}

#[actix_web::test]
async fn a_cancel_keeps_the_partial_text_and_a_failure_is_the_chats_error() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "to-cancel", Some("chat-c")).await;
    create(&app, "to-fail", Some("chat-f")).await;
    for id in ["to-cancel", "to-fail"] {
        super::write(&app, id, "partial ").await;
    }
    let mut cancelled = Reader::start(&app, "reconnect", "chat-c");
    let mut failed = Reader::start(&app, "resume", "chat-f");
    cancelled.until_snapshot(|text| text == "partial ").await;
    failed.until_snapshot(|text| text == "partial ").await;

    // Act
    end(&app, "to-cancel", "cancel", Value::Null).await;
    end(
        &app,
        "to-fail",
        "fail",
        json!({ "error": "model overloaded" }),
    )
    .await;

    // Assert
    let cancelled = cancelled.finish().await;
    let text = text_part(&cancelled["message"]);
    assert_eq!(text["text"], "partial ");
    assert_eq!(text["state"], "done", "{cancelled}");
    assert_eq!(cancelled["errors"], json!([]));
    let failed = failed.finish().await;
    assert_eq!(failed["status"], "error", "{failed}");
    assert_eq!(failed["error"], "model overloaded");
    assert_eq!(text_of(&failed["messages"][0]), "partial ");
}

/// A restart of the broker mid-answer must not pass for the answer's end:
/// the AI SDK reads a response that simply ends as a finished message, so
/// the broker cuts the response off, which `useChat` reads as the dropped
/// connection it is (and a reload resumes elsewhere).
#[actix_web::test]
async fn a_shutdown_mid_answer_is_a_dropped_connection_to_use_chat_not_its_end() {
    // Arrange: a chat page reading a running generation.
    let mut app = spawn_app().await;
    create(&app, "cut-short", Some("chat-s")).await;
    super::write(&app, "cut-short", "partial ").await;
    let mut reader = Reader::start(&app, "resume", "chat-s");
    reader.until_snapshot(|text| text == "partial ").await;

    // Act
    app.stop().await;

    // Assert
    let last = reader.finish().await;
    assert_eq!(last["status"], "error", "{last}");
    assert_eq!(last["finish"]["isError"], true, "{last}");
    assert_eq!(last["finish"]["finishReason"], Value::Null, "{last}");
    assert_eq!(text_of(&last["messages"][0]), "partial ");
}

/// The message's reasoning and text parts: each one's kind, text and state.
fn text_parts(message: &Value) -> Vec<(String, String, String)> {
    message["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| p["type"] == "text" || p["type"] == "reasoning")
        .map(|p| {
            let field = |name: &str| p[name].as_str().unwrap_or_default().to_owned();
            (field("type"), field("text"), field("state"))
        })
        .collect()
}

#[actix_web::test]
async fn the_ai_package_assembles_the_models_thinking_as_a_reasoning_part_live_and_late() {
    // Arrange: the package is reading before the model starts thinking.
    let app = spawn_app().await;
    create(&app, "thinking-gen", Some("chat-think")).await;
    let mut live = Reader::start(&app, "task", "thinking-gen");
    live.until_snapshot(|_| true).await;

    // Act
    let upload = Upload::start(&app, "thinking-gen");
    for thought in ["Two and two", " make four.\n"] {
        upload.send(json!({ "reasoning": thought })).await;
    }
    upload.deltas(&PIECES[..3]).await;
    upload.send(json!({ "complete": {} })).await;
    assert_eq!(upload.finish().await, 200);

    // Assert: a reasoning part, then the text part, each whole and done;
    // a reader that comes later assembles the same from the catch-up.
    let expected = vec![
        (
            "reasoning".to_owned(),
            "Two and two make four.\n".to_owned(),
            "done".to_owned(),
        ),
        ("text".to_owned(), PIECES[..3].concat(), "done".to_owned()),
    ];
    let live = live.finish().await;
    assert_eq!(live["errors"], json!([]), "{live}");
    assert_eq!(text_parts(&live["message"]), expected, "{live}");
    let late = Reader::start(&app, "task", "thinking-gen").finish().await;
    assert_eq!(late["errors"], json!([]), "{late}");
    assert_eq!(text_parts(&late["message"]), expected, "{late}");
}

#[actix_web::test]
async fn a_client_that_says_it_reads_with_ai_6_or_later_gets_the_finish_reason_in_on_finish() {
    // Arrange: two chat pages resuming one generation, one saying its
    // version of the package and one not.
    let app = spawn_app().await;
    create(&app, "versioned", Some("chat-v")).await;
    super::write(&app, "versioned", "partial ").await;
    let mut current = Reader::start_with(&app, "resume", "chat-v", &["ai_sdk=7"]);
    let mut unsaid = Reader::start(&app, "resume", "chat-v");
    current.until_snapshot(|text| text == "partial ").await;
    unsaid.until_snapshot(|text| text == "partial ").await;

    // Act: cut off at the token limit, as a provider's stream says it.
    let result = json!({ "result": { "finish_reason": "length" } });
    end(&app, "versioned", "complete", result).await;

    // Assert: `onFinish` is told why by the part itself; a client that
    // said nothing reads it off the metadata, its stream still valid.
    let current = current.finish().await;
    assert_eq!(current["finish"]["finishReason"], "length", "{current}");
    let unsaid = unsaid.finish().await;
    assert_eq!(unsaid["finish"]["finishReason"], Value::Null, "{unsaid}");
    assert_eq!(unsaid["status"], "ready", "{unsaid}");
    for read in [&current, &unsaid] {
        let metadata = &read["messages"][0]["metadata"];
        assert_eq!(metadata, &json!({ "finishReason": "length" }), "{read}");
    }

    // A version the stream does not speak is refused, GET and HEAD alike.
    for query in ["ai_sdk=4", "ai_sdk=latest"] {
        for path in ["/tasks/versioned/ui-message-stream", "/chats/chat-v/stream"] {
            let url = app.url(&format!("{path}?{query}"));
            let got = app.api_client.get(&url).send().await.expect("GET");
            crate::helpers::assert_error(got, 400, "invalid_query").await;
            let head = app.api_client.head(&url).send().await.expect("HEAD");
            assert_eq!(head.status().as_u16(), 400, "HEAD {path}?{query}");
        }
    }
}
