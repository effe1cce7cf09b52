//! `tokens`: AI generations. `--generations` tasks are written at once,
//! `--tokens` tokens each at `--rate` tokens/s, through one streamed upload
//! per generation or one `/text` request per token (`--via`), while
//! `--viewers` streams per task watch. Then `--late-viewers` per task open
//! after the end and catch up. It reports the tokens the broker took per
//! second, each token's latency from the producer's socket to a viewer's
//! parser, whether every viewer read exactly the generation's text, how
//! many stored events and commits the text cost (from `/metrics`), and with
//! `--broker-pid` the broker's CPU time per token.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use tokio::{task::JoinSet, time::Instant};

use super::{SPARE_FDS, Verdict, ensure_fd_budget};
use crate::{
    cli::TokensArgs,
    cpu::cpu_seconds,
    generation::{Produced, Script, SentClock, Via, Viewed, produce, subscribe, view},
    http1::{Client, Target, expect_status},
    latency::{LatencyRecorder, LatencySummary, new_histogram, unix_micros},
    report::{display_option, emit, rate_per_sec, round3},
};

/// The `/metrics` samples that say what the text cost the store.
const STORE_METRICS: [&str; 3] = [
    "sse_task_text_deltas_per_event_count",
    "sse_task_text_deltas_per_event_sum",
    "sse_store_batch_size_count",
];

pub async fn run(args: &TokensArgs, target: Arc<Target>, deadline: Instant) -> Result<Verdict> {
    let streams = args.generations * (args.viewers + args.late_viewers + 1);
    ensure_fd_budget(streams + SPARE_FDS);
    let run_id = unix_micros();
    let scripts: Vec<Arc<Script>> = (0..args.generations)
        .map(|g| {
            Arc::new(Script::new(
                run_id,
                g,
                args.tokens,
                args.token_bytes as usize,
            ))
        })
        .collect();
    let mut client = Client::new(target.clone());
    for script in &scripts {
        let body = json!({"task_id": script.task_id, "task_type": "sse-bench"}).to_string();
        let answer = client
            .post_json(&target.path("/tasks"), body.as_bytes())
            .await?;
        expect_status("POST /tasks", &answer, 201)?;
    }
    let clocks: Vec<Arc<SentClock>> = scripts
        .iter()
        .map(|_| SentClock::new(args.tokens))
        .collect();
    let token_latency = Arc::new(Mutex::new(new_histogram()?));
    let request_latency = Arc::new(Mutex::new(new_histogram()?));

    eprintln!(
        "sse-bench: {} viewers on {} generations at {}",
        args.viewers * args.generations,
        args.generations,
        target.url()
    );
    let mut viewers = JoinSet::new();
    for (script, clock) in scripts.iter().zip(&clocks) {
        for _ in 0..args.viewers {
            let (stream, opened) = subscribe(&target, script).await?;
            let (script, clock) = (script.clone(), clock.clone());
            let mut latency = LatencyRecorder::new(token_latency.clone());
            viewers.spawn(async move {
                view(
                    stream,
                    opened,
                    &script,
                    &clock,
                    Some(&mut latency),
                    deadline,
                )
                .await
            });
        }
    }

    let store_before = scrape(&mut client, &target).await;
    let cpu_before = cpu_seconds(args.broker_pid)?;
    eprintln!(
        "sse-bench: writing {} tokens per generation via {:?} at {}",
        args.tokens,
        args.via,
        rate_label(args.rate)
    );
    let started = Instant::now();
    let mut producers = JoinSet::new();
    for (script, clock) in scripts.iter().zip(&clocks) {
        let (target, script, clock) = (target.clone(), script.clone(), clock.clone());
        let mut latency = LatencyRecorder::new(request_latency.clone());
        let (via, rate) = (args.via, args.rate);
        producers.spawn(async move {
            let produced =
                produce(&target, &script, via, rate, &clock, &mut latency, deadline).await;
            latency.flush();
            produced
        });
    }
    let produced: Vec<Produced> = producers.join_all().await;
    let produce_seconds = started.elapsed().as_secs_f64();
    let viewed: Vec<Viewed> = viewers.join_all().await;
    let cpu_after = cpu_seconds(args.broker_pid)?;
    let store_after = scrape(&mut client, &target).await;

    eprintln!(
        "sse-bench: {} late viewers",
        args.late_viewers * args.generations
    );
    let mut late = JoinSet::new();
    for (script, clock) in scripts.iter().zip(&clocks) {
        for _ in 0..args.late_viewers {
            let (target, script, clock) = (target.clone(), script.clone(), clock.clone());
            late.spawn(async move {
                match subscribe(&target, &script).await {
                    Ok((stream, opened)) => {
                        view(stream, opened, &script, &clock, None, deadline).await
                    }
                    Err(error) => Viewed {
                        error: Some(format!("{error:#}")),
                        ..Viewed::default()
                    },
                }
            });
        }
    }
    let late: Vec<Viewed> = late.join_all().await;

    let produce = ProduceStats::of(&produced, produce_seconds, &request_latency);
    let tokens = produce.tokens_accepted;
    let report = TokensReport {
        mode: "tokens",
        url: target.url().to_string(),
        via: args.via,
        generations: args.generations,
        tokens_per_generation: args.tokens,
        token_bytes: args.token_bytes as usize,
        rate_per_generation: (args.rate > 0).then_some(args.rate),
        produce,
        live: ViewStats::of(&viewed, args.tokens, Some(&token_latency)),
        late: ViewStats::of(&late, args.tokens, None),
        store: StoreCost::of(store_before, store_after, tokens),
        broker_cpu: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| BrokerCpu::of(after - before, tokens)),
    };
    emit(&report, args.common.json)?;
    Ok(report.verdict())
}

fn rate_label(rate: u64) -> String {
    if rate == 0 {
        "full speed".to_owned()
    } else {
        format!("{rate} tokens/s each")
    }
}

/// The [`STORE_METRICS`] now, summed over label sets; `None` when
/// `/metrics` does not answer.
async fn scrape(client: &mut Client, target: &Target) -> Option<[f64; 3]> {
    // A GET is safe to repeat: the first try may meet a keep-alive
    // connection the broker closed while the run went on.
    let path = target.path("/metrics");
    let answer = match client.get(&path).await {
        Ok(answer) => answer,
        Err(_) => client.get(&path).await.ok()?,
    };
    let text = std::str::from_utf8(&answer.body).ok()?;
    (answer.status == 200).then(|| {
        STORE_METRICS.map(|metric| {
            text.lines()
                .filter_map(|line| {
                    let rest = line.strip_prefix(metric)?;
                    (rest.starts_with('{') || rest.starts_with(' ')).then_some(rest)
                })
                .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
    })
}

#[derive(Debug, Serialize)]
struct TokensReport {
    mode: &'static str,
    url: String,
    via: Via,
    generations: u64,
    tokens_per_generation: u64,
    token_bytes: usize,
    /// `None` (null): full speed.
    rate_per_generation: Option<u64>,
    produce: ProduceStats,
    live: ViewStats,
    late: ViewStats,
    store: Option<StoreCost>,
    broker_cpu: Option<BrokerCpu>,
}

impl TokensReport {
    fn verdict(&self) -> Verdict {
        let expected = self.generations * self.tokens_per_generation;
        if self.produce.errors == 0
            && self.produce.tokens_accepted == expected
            && self.live.is_clean()
            && self.late.is_clean()
        {
            Verdict::Clean
        } else {
            Verdict::Faults
        }
    }
}

#[derive(Debug, Serialize)]
struct ProduceStats {
    tokens_sent: u64,
    tokens_accepted: u64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    /// From the first producer starting to the last task completed.
    seconds: f64,
    tokens_per_sec: Option<f64>,
    /// `--via text`: one request per token.
    request_latency: Option<LatencySummary>,
}

impl ProduceStats {
    fn of(
        produced: &[Produced],
        seconds: f64,
        request_latency: &Mutex<hdrhistogram::Histogram<u64>>,
    ) -> Self {
        let accepted = produced.iter().map(|p| p.tokens_accepted).sum();
        let errors: Vec<&String> = produced.iter().filter_map(|p| p.error.as_ref()).collect();
        Self {
            tokens_sent: produced.iter().map(|p| p.tokens_sent).sum(),
            tokens_accepted: accepted,
            requests: produced.iter().map(|p| p.requests).sum(),
            errors: errors.len() as u64,
            first_error: errors.first().map(|error| (*error).clone()),
            seconds: round3(seconds),
            tokens_per_sec: rate_per_sec(accepted, seconds),
            request_latency: LatencySummary::of(
                &request_latency
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            ),
        }
    }
}

/// What a group of viewers read.
#[derive(Debug, Serialize)]
struct ViewStats {
    viewers: u64,
    /// Read the generation's text byte for byte, then `complete`.
    exact: u64,
    failed: u64,
    first_error: Option<String>,
    tokens_delivered: u64,
    text_events: u64,
    tokens_per_text_event: Option<f64>,
    frames_per_viewer: Option<f64>,
    /// Live viewers: each token, producer's socket → viewer's parser.
    token_latency: Option<LatencySummary>,
    /// Stream request → `complete` parsed (for late viewers, the catch-up).
    until_complete: Option<LatencySummary>,
}

impl ViewStats {
    fn of(
        viewed: &[Viewed],
        tokens: u64,
        token_latency: Option<&Mutex<hdrhistogram::Histogram<u64>>>,
    ) -> Self {
        let count = viewed.len() as u64;
        let text_events: u64 = viewed.iter().map(|v| v.text_events).sum();
        let frames: u64 = viewed.iter().map(|v| v.frames).sum();
        let delivered: u64 = viewed.iter().map(|v| v.tokens.min(tokens)).sum();
        let mut until_complete = new_histogram().ok();
        for elapsed in viewed.iter().filter_map(|v| v.elapsed) {
            if let Some(histogram) = until_complete.as_mut() {
                histogram.saturating_record(crate::latency::micros(elapsed));
            }
        }
        let errors: Vec<&String> = viewed.iter().filter_map(|v| v.error.as_ref()).collect();
        Self {
            viewers: count,
            exact: viewed.iter().filter(|v| v.exact).count() as u64,
            failed: errors.len() as u64,
            first_error: errors.first().map(|error| (*error).clone()),
            tokens_delivered: delivered,
            text_events,
            tokens_per_text_event: (text_events > 0)
                .then(|| round3(delivered as f64 / text_events as f64)),
            frames_per_viewer: (count > 0).then(|| round3(frames as f64 / count as f64)),
            token_latency: token_latency.and_then(|histogram| {
                LatencySummary::of(&histogram.lock().unwrap_or_else(PoisonError::into_inner))
            }),
            until_complete: until_complete.as_ref().and_then(LatencySummary::of),
        }
    }

    fn is_clean(&self) -> bool {
        self.failed == 0 && self.exact == self.viewers
    }
}

/// What the run's text cost the store, from `/metrics` before and after.
#[derive(Debug, Serialize)]
struct StoreCost {
    text_events_stored: f64,
    deltas_stored: f64,
    commits: f64,
    tokens_per_text_event: Option<f64>,
    tokens_per_commit: Option<f64>,
}

impl StoreCost {
    fn of(before: Option<[f64; 3]>, after: Option<[f64; 3]>, tokens: u64) -> Option<Self> {
        let (before, after) = (before?, after?);
        let [events, deltas, commits] = [0, 1, 2].map(|i| after[i] - before[i]);
        let per = |count: f64| (count > 0.0).then(|| round3(tokens as f64 / count));
        Some(Self {
            text_events_stored: events,
            deltas_stored: deltas,
            commits,
            tokens_per_text_event: per(events),
            tokens_per_commit: per(commits),
        })
    }
}

#[derive(Debug, Serialize)]
struct BrokerCpu {
    seconds: f64,
    micros_per_token: Option<f64>,
}

impl BrokerCpu {
    fn of(seconds: f64, tokens: u64) -> Self {
        Self {
            seconds: round3(seconds),
            micros_per_token: (tokens > 0).then(|| round3(seconds * 1e6 / tokens as f64)),
        }
    }
}

impl fmt::Display for TokensReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sse-bench tokens {}: {} generations × {} tokens of {} bytes via {:?}, {}",
            self.url,
            self.generations,
            self.tokens_per_generation,
            self.token_bytes,
            self.via,
            rate_label(self.rate_per_generation.unwrap_or(0)),
        )?;
        let p = &self.produce;
        writeln!(
            f,
            "{:12}{} of {} tokens accepted in {} s: {} tokens/s ({} requests, {} errors)",
            "produce",
            p.tokens_accepted,
            p.tokens_sent,
            p.seconds,
            display_option(p.tokens_per_sec),
            p.requests,
            p.errors
        )?;
        if let Some(latency) = &p.request_latency {
            writeln!(f, "{:12}request {latency}", "")?;
        }
        if let Some(error) = &p.first_error {
            writeln!(f, "{:12}first error: {error}", "")?;
        }
        for (name, stats) in [("live", &self.live), ("late", &self.late)] {
            writeln!(
                f,
                "{name:12}{} of {} viewers exact, {} failed; {} tokens in {} text events \
                 ({} per event), {} frames per viewer",
                stats.exact,
                stats.viewers,
                stats.failed,
                stats.tokens_delivered,
                stats.text_events,
                display_option(stats.tokens_per_text_event),
                display_option(stats.frames_per_viewer)
            )?;
            if let Some(latency) = &stats.token_latency {
                writeln!(f, "{:12}token {latency}", "")?;
            }
            if let Some(latency) = &stats.until_complete {
                writeln!(f, "{:12}until complete {latency}", "")?;
            }
            if let Some(error) = &stats.first_error {
                writeln!(f, "{:12}first error: {error}", "")?;
            }
        }
        if let Some(store) = &self.store {
            writeln!(
                f,
                "{:12}{} text events, {} commits: {} tokens per event, {} per commit",
                "store",
                store.text_events_stored,
                store.commits,
                display_option(store.tokens_per_text_event),
                display_option(store.tokens_per_commit)
            )?;
        }
        if let Some(cpu) = &self.broker_cpu {
            writeln!(
                f,
                "{:12}{} s: {} µs per token",
                "broker cpu",
                cpu.seconds,
                display_option(cpu.micros_per_token)
            )?;
        }
        Ok(())
    }
}
