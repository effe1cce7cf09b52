//! `tokens`: AI generations. `--generations` tasks are written at once,
//! `--tokens` tokens each at `--rate` tokens/s, through one streamed upload
//! per generation or one `/text` request per token (`--via`), while
//! `--viewers` streams per task watch. Then `--late-viewers` per task open
//! after the end and catch up. It reports the tokens the broker took per
//! second, each token's latency from the producer's socket to a viewer's
//! parser, whether every viewer read exactly the generation's text, how
//! many stored events and commits the text cost (from `/metrics`), and with
//! `--broker-pid` the broker's CPU time per token.

pub mod capacity;
mod report;

use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde_json::json;
use tokio::{task::JoinSet, time::Instant};

use super::{SPARE_FDS, Verdict, ensure_fd_budget};
use crate::{
    cli::TokensArgs,
    cpu::cpu_seconds,
    generation::{Produced, Script, SentClock, Viewed, produce, subscribe, view},
    http1::{Client, Target, expect_status},
    latency::{LatencyRecorder, new_histogram, unix_micros},
    report::emit,
};
use report::{BrokerCpu, ProduceStats, StoreCost, TokensReport, ViewStats};

/// The `/metrics` samples that say what the text cost the store.
const STORE_METRICS: [&str; 3] = [
    "sse_task_text_deltas_per_event_count",
    "sse_task_text_deltas_per_event_sum",
    "sse_store_batch_size_count",
];

pub async fn run(args: &TokensArgs, target: Arc<Target>, deadline: Instant) -> Result<Verdict> {
    let report = measure(args, target, deadline).await?;
    emit(&report, args.common.json)?;
    Ok(report.verdict())
}

/// One run of `args` against the broker at `target`, measured.
async fn measure(
    args: &TokensArgs,
    target: Arc<Target>,
    deadline: Instant,
) -> Result<TokensReport> {
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
    Ok(TokensReport {
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
    })
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
