//! One generation of the `tokens` mode: its text, the producer that writes
//! it into a task, and the viewers that read it back.
//!
//! Every token is `--token-bytes` ASCII bytes drawn from the generation and
//! token numbers, so a viewer knows which tokens a received text covers
//! (byte offset / token size) and can check the whole text exactly at the
//! end. The producer notes the time it hands each token to its socket; a
//! viewer's latency for a token runs from then to the frame that completes
//! it being parsed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::{
    http1::{ChunkedUpload, Client, Target, expect_status},
    latency::{LatencyRecorder, micros, unix_micros},
    sse::SseStream,
};

/// What the tokens are made of: JSON-safe, no escaping needed.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz ";

/// How the producer writes its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// One streamed `POST /tasks/{id}/stream` (NDJSON) for the generation.
    Upload,
    /// One `POST /tasks/{id}/text` per token, on a keep-alive connection.
    Text,
}

/// The text of one generation.
#[derive(Debug, Clone)]
pub struct Script {
    pub task_id: String,
    generation: u64,
    pub tokens: u64,
    pub token_bytes: usize,
}

impl Script {
    pub fn new(run: u64, generation: u64, tokens: u64, token_bytes: usize) -> Self {
        Self {
            task_id: format!("bench-{run}-{generation}"),
            generation,
            tokens,
            token_bytes,
        }
    }

    pub fn token(&self, index: u64) -> String {
        let mut state = self.generation.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index;
        (0..self.token_bytes)
            .map(|_| {
                state = splitmix64(state);
                char::from(ALPHABET[(state % ALPHABET.len() as u64) as usize])
            })
            .collect()
    }

    pub fn text(&self) -> String {
        (0..self.tokens).map(|index| self.token(index)).collect()
    }
}

fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// When each token was handed to the producer's socket (unix µs; 0 = not yet).
pub struct SentClock(Box<[AtomicU64]>);

impl SentClock {
    pub fn new(tokens: u64) -> Arc<Self> {
        Arc::new(Self((0..tokens).map(|_| AtomicU64::new(0)).collect()))
    }

    fn mark(&self, index: u64, at: u64) {
        self.0[index as usize].store(at, Ordering::Release);
    }

    fn at(&self, index: u64) -> u64 {
        self.0[index as usize].load(Ordering::Acquire)
    }
}

/// What a producer did.
#[derive(Debug, Default)]
pub struct Produced {
    pub tokens_sent: u64,
    /// Deltas the broker says it accepted (upload answer, or 202s).
    pub tokens_accepted: u64,
    pub requests: u64,
    /// From the first token written to the task's completion acknowledged.
    pub elapsed: Option<Duration>,
    pub error: Option<String>,
}

/// Writes the generation's tokens at `rate` tokens/s (0: as fast as the
/// broker takes them), then completes the task.
pub async fn produce(
    target: &Arc<Target>,
    script: &Script,
    via: Via,
    rate: u64,
    sent: &SentClock,
    request_latency: &mut LatencyRecorder,
    deadline: Instant,
) -> Produced {
    let mut produced = Produced::default();
    let start = Instant::now();
    let outcome = match via {
        Via::Upload => upload(target, script, rate, sent, &mut produced, deadline).await,
        Via::Text => {
            per_request(
                target,
                script,
                rate,
                sent,
                &mut produced,
                request_latency,
                deadline,
            )
            .await
        }
    };
    match outcome {
        Ok(()) => produced.elapsed = Some(start.elapsed()),
        Err(error) => produced.error = Some(format!("{error:#}")),
    }
    produced
}

/// When token `index` is due: `None` means now.
fn due(start: Instant, rate: u64, index: u64) -> Option<Instant> {
    (rate > 0).then(|| start + Duration::from_secs_f64(index as f64 / rate as f64))
}

async fn upload(
    target: &Target,
    script: &Script,
    rate: u64,
    sent: &SentClock,
    produced: &mut Produced,
    deadline: Instant,
) -> Result<()> {
    let path = target.path(&format!("/tasks/{}/stream", script.task_id));
    let mut upload = ChunkedUpload::start(target, &path, "application/x-ndjson").await?;
    let start = Instant::now();
    let mut index = 0;
    let mut chunk = Vec::new();
    while index < script.tokens {
        if let Some(due) = due(start, rate, index) {
            timeout_at(deadline, sleep_until(due))
                .await
                .context("the run's --timeout-secs passed")?;
        }
        // Every token due by now goes out in one chunk, as a producer
        // reading its model's output in bursts would send them.
        let now = Instant::now();
        let at = unix_micros();
        chunk.clear();
        loop {
            let line = json!({"delta": script.token(index), "seq": index});
            chunk.extend_from_slice(line.to_string().as_bytes());
            chunk.push(b'\n');
            sent.mark(index, at);
            index += 1;
            let next_due = due(start, rate, index).is_some_and(|due| due <= now);
            if index >= script.tokens || !next_due {
                break;
            }
        }
        timeout_at(deadline, upload.send(&chunk))
            .await
            .context("the run's --timeout-secs passed")??;
        produced.tokens_sent = index;
        produced.requests = 1;
    }
    upload.send(b"{\"complete\": {}}\n").await?;
    let answer = timeout_at(deadline, upload.finish())
        .await
        .context("the run's --timeout-secs passed")??;
    expect_status("the upload", &answer, 200)?;
    let answer: Value = serde_json::from_slice(&answer.body).context("the upload's answer")?;
    produced.tokens_accepted = answer["deltas"].as_u64().unwrap_or(0);
    if answer["task"]["status"] != "completed" {
        bail!("the upload left the task {}", answer["task"]["status"]);
    }
    Ok(())
}

async fn per_request(
    target: &Arc<Target>,
    script: &Script,
    rate: u64,
    sent: &SentClock,
    produced: &mut Produced,
    request_latency: &mut LatencyRecorder,
    deadline: Instant,
) -> Result<()> {
    let mut client = Client::new(target.clone());
    let path = target.path(&format!("/tasks/{}/text", script.task_id));
    let start = Instant::now();
    for index in 0..script.tokens {
        if let Some(due) = due(start, rate, index) {
            timeout_at(deadline, sleep_until(due))
                .await
                .context("the run's --timeout-secs passed")?;
        }
        let body = json!({"delta": script.token(index), "seq": index}).to_string();
        let written = Instant::now();
        sent.mark(index, unix_micros());
        let answer = timeout_at(deadline, client.post_json(&path, body.as_bytes()))
            .await
            .context("the run's --timeout-secs passed")??;
        request_latency.record(micros(written.elapsed()));
        produced.requests += 1;
        produced.tokens_sent = index + 1;
        expect_status("POST /text", &answer, 202)?;
        produced.tokens_accepted += 1;
    }
    let path = target.path(&format!("/tasks/{}/complete", script.task_id));
    let answer = client.post_json(&path, b"{}").await?;
    expect_status("POST /complete", &answer, 200)?;
    Ok(())
}

/// What a viewer read.
#[derive(Debug, Default)]
pub struct Viewed {
    pub text_events: u64,
    pub frames: u64,
    /// Tokens whose bytes all arrived.
    pub tokens: u64,
    /// The text read is the generation's, byte for byte.
    pub exact: bool,
    /// From the request written to the `complete` frame parsed.
    pub elapsed: Option<Duration>,
    pub error: Option<String>,
}

/// A task stream, opened and past its first frame (the task's state), so
/// that it is subscribed before the producer starts.
pub async fn subscribe(target: &Target, script: &Script) -> Result<(SseStream, Instant)> {
    let opened = Instant::now();
    let path = target.path(&format!("/tasks/{}/events", script.task_id));
    let stream = SseStream::open(target, &path).await?;
    Ok((stream, opened))
}

/// Reads a task stream to its `complete` frame. `latency` gets each
/// token's delivery time when given (live viewers).
pub async fn view(
    mut stream: SseStream,
    opened: Instant,
    script: &Script,
    sent: &SentClock,
    mut latency: Option<&mut LatencyRecorder>,
    deadline: Instant,
) -> Viewed {
    let mut viewed = Viewed::default();
    let mut text = String::with_capacity(script.tokens as usize * script.token_bytes);
    let outcome: Result<()> = async {
        loop {
            let frame = timeout_at(deadline, stream.next_event())
                .await
                .context("the run's --timeout-secs passed")??
                .context("the stream ended before the task completed")?;
            viewed.frames += 1;
            match frame.event.as_deref().unwrap_or("message") {
                "text" => {
                    let data: Value =
                        serde_json::from_str(&frame.data).context("a text frame's data")?;
                    text.push_str(data["delta"].as_str().context("a text frame's delta")?);
                    viewed.text_events += 1;
                    let covered = (text.len() / script.token_bytes) as u64;
                    if let Some(latency) = latency.as_deref_mut() {
                        let now = unix_micros();
                        for index in viewed.tokens..covered.min(script.tokens) {
                            latency.record(now.saturating_sub(sent.at(index)));
                        }
                    }
                    viewed.tokens = covered;
                }
                "complete" => {
                    viewed.elapsed = Some(opened.elapsed());
                    return Ok(());
                }
                "error" => bail!("the task ended in error: {}", frame.data),
                _ => {}
            }
        }
    }
    .await;
    if let Some(latency) = latency {
        latency.flush();
    }
    viewed.exact = outcome.is_ok() && text == script.text();
    viewed.error = outcome.err().map(|error| format!("{error:#}"));
    viewed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fixed_width_json_safe_and_differ_between_generations() {
        let (a, b) = (Script::new(1, 0, 100, 4), Script::new(1, 1, 100, 4));
        assert_eq!(a.text().len(), 400);
        assert!(a.text().bytes().all(|byte| ALPHABET.contains(&byte)));
        assert_eq!(a.token(7), a.token(7));
        assert_ne!(a.text(), b.text());
    }
}
