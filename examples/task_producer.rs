//! A task producer, the way an AI backend would write into the broker: it
//! creates a task, streams a text into it token by token while reporting
//! progress, and completes it. It stops cleanly when someone cancels the
//! task (the next write answers 409 `task_cancelled`).
//!
//! ```sh
//! cargo run --example task_producer -- --url http://127.0.0.1:8080
//! # with authentication on: a token with the `publish` scope
//! cargo run --example task_producer -- --token "$(sse-broker token --sub producer --scope publish)"
//! ```
//!
//! Watch it at `http://127.0.0.1:8080/?task=ID`, or with
//! `curl -N http://127.0.0.1:8080/tasks/ID/events`.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const TEXT: &str = "Server-Sent Events keep one HTTP response open and let the server \
write events into it as they happen. A browser that loses its network reconnects with the \
id of the last event it saw, and the broker replays what it missed, so the answer arrives \
whole, in order, exactly once.";

#[derive(Parser)]
struct Args {
    /// The broker's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A JWT with the `publish` scope, when authentication is on.
    #[arg(long, env = "SSE_BROKER_TOKEN")]
    token: Option<String>,
    /// Pause between tokens, in milliseconds.
    #[arg(long, default_value_t = 40)]
    delay_ms: u64,
}

/// The broker told us to stop: the task was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("the task was cancelled")]
struct Cancelled;

struct Broker {
    client: Client,
    url: String,
    token: Option<String>,
}

impl Broker {
    /// Sends one JSON request and returns the JSON answer. A 409
    /// `task_cancelled` becomes the [`Cancelled`] error.
    async fn call(&self, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .json(&body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| path.to_owned())?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        if status == StatusCode::CONFLICT && answer["error"]["code"] == "task_cancelled" {
            return Err(Cancelled.into());
        }
        if !status.is_success() {
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            bail!("{path}: {status}: {message}");
        }
        Ok(answer)
    }
}

async fn produce(broker: &Broker, task_id: &str, delay: Duration) -> anyhow::Result<()> {
    let task = format!("/tasks/{task_id}");
    let text = format!("{task}/text");
    broker
        .call(
            Method::PATCH,
            &task,
            json!({"progress": 5, "stage": "writing"}),
        )
        .await?;
    let tokens: Vec<&str> = TEXT.split_inclusive(' ').collect();
    for (index, token) in tokens.iter().enumerate() {
        broker
            .call(Method::POST, &text, json!({"delta": token}))
            .await?;
        if (index + 1) % 10 == 0 {
            let progress = 5.0 + 90.0 * (index + 1) as f64 / tokens.len() as f64;
            broker
                .call(Method::PATCH, &task, json!({"progress": progress}))
                .await?;
        }
        tokio::time::sleep(delay).await;
    }
    let result = json!({"result": {"tokens": tokens.len()}});
    broker
        .call(Method::POST, &format!("{task}/complete"), result)
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let broker = Broker {
        client: Client::new(),
        url: args.url.trim_end_matches('/').to_owned(),
        token: args.token,
    };
    let created = broker
        .call(
            Method::POST,
            "/tasks",
            json!({"task_type": "example", "stage": "thinking"}),
        )
        .await?;
    let task_id = created["task_id"]
        .as_str()
        .context("the broker answered no task_id")?;
    println!("task {task_id}: {}/?task={task_id}", broker.url);
    match produce(&broker, task_id, Duration::from_millis(args.delay_ms)).await {
        Ok(()) => println!("task {task_id}: completed"),
        Err(error) if error.is::<Cancelled>() => println!("task {task_id}: cancelled, stopping"),
        Err(error) => {
            // Tell the watchers rather than leave them waiting for the orphan timeout.
            let fail = json!({"error": error.to_string()});
            let _ = broker
                .call(Method::POST, &format!("/tasks/{task_id}/fail"), fail)
                .await;
            return Err(error);
        }
    }
    Ok(())
}
