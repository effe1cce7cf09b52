//! `sse-bench`: the load generator for `sse-broker`.
//!
//! It drives a running broker from the outside, over real HTTP/1.1 on
//! loopback, the way browsers and publishers do, and prints what it measured.
//! No HTTP client library sits in between: requests are written by hand on
//! `tokio::net::TcpStream` and the chunked transfer encoding is decoded here
//! (frames may split anywhere across reads), so a framing bug in the broker
//! shows up as an error rather than being smoothed over. SSE lines go through
//! the broker library's WHATWG parser (`sse_broker::domain::SseParser`), the
//! decoder every reader in this repository shares; the broker's encoder is
//! separate code, so it is still checked from the outside.
//!
//! # Modes
//!
//! - `fanout`: opens `--streams` streams on `GET /sse/events?event_types=T`
//!   and waits for every stream's `event: connected` frame. Then it publishes
//!   `--events` events of type T at `--rate` events/s (0 = as fast as the
//!   broker acknowledges) over `--publishers` keep-alive connections
//!   (`POST /sse/publish`, `--batch` events per request, a JSON array when
//!   above 1). Each event's data is
//!   `{"run": R, "seq": n, "sent_us": <unix µs when the request was written>,
//!   "pad": "<--payload-bytes of x>"}`. Each stream records the latency
//!   (receive time − `sent_us`) of every event it receives, and checks the
//!   sequence: missing, duplicate and out-of-order `seq`, and `id:` values
//!   that fail to increase. After the last acknowledgement it waits up to
//!   `--drain-secs` for the deliveries still in flight. It reports the connect
//!   time, the publish throughput (events acknowledged with 202 per second),
//!   deliveries expected against received, latency percentiles over all
//!   deliveries, and the delivery throughput (deliveries per second from the
//!   first publish to the last delivery).
//! - `idle`: opens `--streams` streams that get nothing but heartbeats,
//!   holds them for `--hold-secs`, and reports the client's connect rate and
//!   how many streams the broker dropped during the hold.
//! - `publish`: publishes `--events` events over `--concurrency` connections
//!   with no stream open, and reports events stored per second and the request
//!   latency.
//! - `tokens`: AI generations. `--generations` tasks written at once,
//!   `--tokens` fixed-width tokens each at `--rate` tokens/s (0 = as fast as
//!   the broker takes them), through one streamed NDJSON upload per
//!   generation (`--via upload`, `POST /tasks/{id}/stream`) or one request
//!   per token (`--via text`), with `--viewers` task streams each watching
//!   and `--late-viewers` each opened after the end. It reports the tokens
//!   accepted per second, per-token latency (producer's socket → viewer's
//!   parser), whether every viewer read the exact text, the stored text
//!   events and commits the text cost (`/metrics`), the late viewers' time
//!   to catch up, and with `--broker-pid` the broker's CPU µs per token.
//! - `capacity`: the most concurrent generations the broker holds within a
//!   token-latency p99 (`--p99-ms`, default 50). Each probe is a whole
//!   `tokens` run (same flags) at some `--generations`: the given count
//!   first, doubling while probes stay within (every token accepted, every
//!   viewer's text exact, live p99 at most the target), then bisecting
//!   until the largest within and the smallest beyond are `--resolution`
//!   apart (default 25), never above `--max-generations`. The probes share
//!   the broker and its store, `--settle-secs` apart; `--timeout-secs`
//!   bounds each. It reports every probe (tokens/s, p50/p99/p99.9, broker
//!   µs per token and cores used) and the answer.
//! - `saturate`: the saturated publish path. A fan-out run with `--streams`
//!   streams (default 100) and `--publishers` unpaced keep-alive publishers
//!   (default 16), one stored event per request, for `--secs` (or exactly
//!   `--events`). It reports stored publishes/s acknowledged,
//!   deliveries/s, publish → deliver and request latency, and with
//!   `--broker-pid` the broker's CPU µs per delivery and per publish.
//! - `storm`: a reconnect storm. `--streams` streams (default 10,000) open
//!   and each receives one seed event, so that it has an id to resume from;
//!   all close; `--events` events (default 1,000) are published with no
//!   stream open (`--publishers`, `--batch`); then every stream reconnects
//!   at once (`--reopen-concurrency`, 0 = all) with `Last-Event-ID` = the
//!   last id it received. It reports how long until every stream held all
//!   missed events (overall, and per stream p50/p99/max), lost, duplicated
//!   and out-of-order deliveries, the latency of `GET /health` probed every
//!   `--health-interval-ms` on its own connection meanwhile, and with
//!   `--broker-pid` the broker's peak RSS and CPU time during the storm.
//! - `soak`: churn for leak hunting. `--streams` streams (default 2,000)
//!   stay open while `--churn` per second (default 50) close and resume
//!   (round robin, each with `Last-Event-ID`) and publishers store `--rate`
//!   events/s (default 100) for `--secs` (default 1,200). Every
//!   `--sample-secs` one line: elapsed, broker RSS, broker open fds
//!   (`/proc/PID/fd`), streams open, events published, deliveries. At the
//!   end every stream closes and after `--settle-secs` the broker is sampled
//!   once more. It reports RSS at start, after a minute, max, at the end
//!   and after the close, the least-squares RSS trend over the run's second
//!   half (MiB per 10 min), fds at start, end and after the close, and
//!   whether every stream received every acknowledged event exactly once
//!   across all its reconnects.
//!
//! With `--broker-pid` (fanout, idle, saturate) the broker's resident memory
//! (`VmRSS` in `/proc/PID/status`) is sampled before the streams open, once
//! all are connected, and at the end; memory per stream is
//! `(after_open − before) / streams`. Fanout and saturate also read its CPU
//! time (user + system, `/proc/PID/stat`) over the publish and drain phase,
//! divided by deliveries and by publishes.
//!
//! # Reading the numbers
//!
//! - Latency runs from the moment a publish request is written to the moment
//!   the frame is parsed by a stream reader, so it includes the publish
//!   request, the store's commit, the fan-out and this client's scheduling.
//!   Both ends read the same clock, as they live in this process. The bench
//!   shares the CPUs with the broker; on a small machine that is part of
//!   the result.
//! - `sent_us` is taken when a request is written, not when the `--rate`
//!   schedule wanted it, so if the broker falls behind the schedule the wait
//!   of the backlog is not counted (coordinated omission). The achieved
//!   publish rate shows when that happens.
//! - Every report shows lost (acknowledged, never delivered), duplicated
//!   and out-of-order deliveries; all three must be 0. Out of order means an
//!   `id:` not above the stream's previous one, also across a stream's
//!   reconnects: that is always a broker bug. With more than one publisher
//!   connection the broker may commit events in an order other than `seq`,
//!   so `seq_out_of_order` is informational.
//! - A stream that resumes (storm, soak) keeps one record across its
//!   connections, so a replay that skips or repeats an event shows as lost
//!   or duplicated. Connections the broker ends or refuses meanwhile are
//!   resumed after 250 ms and counted as losses.
//! - `run` is unique per invocation; frames of the right type from anyone
//!   else are counted as `foreign_frames` and otherwise ignored.
//! - Memory per stream means something only on a freshly started broker:
//!   the allocator keeps memory once freed, and the broker notices that a
//!   client has gone only when a write (a heartbeat) fails, so the streams
//!   of an earlier run may still be held for a while.
//!
//! # Safety rails
//!
//! Only loopback targets are accepted (127.0.0.0/8, ::1, `localhost`). Every
//! loop is bounded by a count and by `--timeout-secs` (for a soak, by
//! default its planned length plus two minutes). The soft
//! `RLIMIT_NOFILE` is raised to the hard limit at start, with a warning when
//! that is still below what the run needs.
//!
//! Exit status: 0 when the run completed cleanly; 2 when it completed but
//! found faults (a delivery missing or duplicated, ids going backwards, a
//! stream dropped, refused publishes, a storm not caught up or a `/health`
//! probe unanswered); 1 on an error.
//!
//! # Layout
//!
//! - [`cli`]: the flags of each mode; this file parses them and dispatches.
//! - [`modes`]: one file (or folder) per mode: the run and its report.
//! - [`streams`]: the stream readers, their checks and their resumes;
//!   [`publishers`]: the publisher connections and the `--rate` schedule;
//!   [`health_probe`]: `GET /health` on a loop.
//! - [`report`]: the shared report parts, text or JSON ([`figures`]: their
//!   rounding); [`latency`]: the
//!   histograms; [`seq_set`]: which seqs arrived; [`trend`]: least-squares
//!   slopes.
//! - The broker seen from `/proc`: [`memory`] (RSS), [`cpu`] (CPU time),
//!   [`fds`] (open file descriptors).
//! - [`http1`]: the raw HTTP/1.1 client; [`sse`]: an event stream read over it.

mod cli;
mod cpu;
mod fds;
mod figures;
mod generation;
mod health_probe;
mod http1;
mod latency;
mod memory;
mod modes;
mod publishers;
mod report;
mod seq_set;
mod sse;
mod streams;
mod trend;

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::Result;
use clap::Parser;
use tokio::time::Instant;

use crate::{
    cli::{Cli, Mode},
    http1::Target,
    modes::Verdict,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.mode.common().threads {
        builder.worker_threads(usize::from(threads));
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sse-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(&cli.mode));
    // Tasks still holding sockets (after an error or a timeout) are dropped,
    // not awaited: the run is over.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(Verdict::Clean) => ExitCode::SUCCESS,
        Ok(Verdict::Faults) => ExitCode::from(2),
        Err(error) => {
            eprintln!("sse-bench: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mode: &Mode) -> Result<Verdict> {
    let common = mode.common();
    let deadline = Instant::now() + Duration::from_secs(mode.timeout_secs());
    let target = Arc::new(Target::resolve(&common.url, common.token.as_deref()).await?);
    match mode {
        Mode::Fanout(args) => modes::fanout::run(args, target, deadline).await,
        Mode::Idle(args) => modes::idle::run(args, target, deadline).await,
        Mode::Publish(args) => modes::publish::run(args, target, deadline).await,
        Mode::Tokens(args) => modes::tokens::run(args, target, deadline).await,
        Mode::Capacity(args) => {
            let probe_timeout = Duration::from_secs(mode.timeout_secs());
            modes::tokens::capacity::run(args, target, probe_timeout).await
        }
        Mode::Saturate(args) => modes::saturate::run(args, target, deadline).await,
        Mode::Storm(args) => modes::storm::run(args, target, deadline).await,
        Mode::Soak(args) => modes::soak::run(args, target, deadline).await,
    }
}
