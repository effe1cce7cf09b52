//! `capacity`: the most concurrent generations one broker holds within a
//! token-latency p99. Each probe is a whole `tokens` run at some
//! `--generations`: the first at the given count, then doubling while
//! probes stay within, then bisecting between the largest within and the
//! smallest beyond until they are `--resolution` apart. Every probe runs
//! against the same broker (and store), `--settle-secs` after the last.

use std::{fmt, sync::Arc, time::Duration};

use anyhow::Result;
use serde::Serialize;
use tokio::time::Instant;

use super::{measure, rate_label, report::TokensReport};
use crate::{
    cli::CapacityArgs,
    http1::Target,
    modes::Verdict,
    report::{display_option, emit, round3},
};

pub async fn run(
    args: &CapacityArgs,
    target: Arc<Target>,
    probe_timeout: Duration,
) -> Result<Verdict> {
    let mut search = Search::new(args.load.generations, args.max_generations, args.resolution);
    let mut probes = Vec::new();
    while let Some(generations) = search.next() {
        if !probes.is_empty() {
            tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
        }
        let load = crate::cli::TokensArgs {
            generations,
            ..args.load.clone()
        };
        let report = measure(&load, target.clone(), Instant::now() + probe_timeout).await?;
        let probe = Probe::of(&report, args.p99_ms);
        eprintln!("sse-bench: capacity probe {probe}");
        search.record(generations, probe.within);
        probes.push(probe);
    }
    let report = CapacityReport {
        mode: "capacity",
        url: target.url().to_string(),
        p99_target_ms: args.p99_ms,
        tokens_per_generation: args.load.tokens,
        rate_per_generation: (args.load.rate > 0).then_some(args.load.rate),
        viewers_per_generation: args.load.viewers,
        capacity: search.within,
        first_beyond: search.beyond,
        max_generations: args.max_generations,
        probes,
    };
    emit(&report, args.load.common.json)?;
    // A probe that lost or garbled text is a broker fault at any load.
    Ok(if report.probes.iter().all(|p| p.clean) {
        Verdict::Clean
    } else {
        Verdict::Faults
    })
}

/// Which generation count to probe next, from the probes so far.
#[derive(Debug)]
struct Search {
    start: u64,
    max: u64,
    resolution: u64,
    /// The largest count probed within the target.
    within: Option<u64>,
    /// The smallest count probed beyond it.
    beyond: Option<u64>,
}

impl Search {
    fn new(start: u64, max: u64, resolution: u64) -> Self {
        Self {
            start: start.clamp(1, max),
            max,
            resolution: resolution.max(1),
            within: None,
            beyond: None,
        }
    }

    fn record(&mut self, generations: u64, within: bool) {
        if within {
            self.within = self.within.max(Some(generations));
        } else {
            self.beyond = Some(self.beyond.map_or(generations, |b| b.min(generations)));
        }
    }

    /// `None` once the answer is known: the bracket is narrow enough, the
    /// maximum is within, or even one generation is beyond.
    fn next(&self) -> Option<u64> {
        match (self.within, self.beyond) {
            (None, None) => Some(self.start),
            (Some(within), None) => (within < self.max).then(|| (within * 2).min(self.max)),
            (None, Some(beyond)) => (beyond > 1).then_some(beyond / 2),
            (Some(within), Some(beyond)) => {
                (beyond - within > self.resolution).then_some(within + (beyond - within) / 2)
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct Probe {
    generations: u64,
    within: bool,
    /// Every token accepted and every viewer's text exact.
    clean: bool,
    tokens_per_sec: Option<f64>,
    token_p50_ms: Option<f64>,
    token_p99_ms: Option<f64>,
    token_p999_ms: Option<f64>,
    broker_us_per_token: Option<f64>,
    /// The broker's CPU time over the probe's length: 1.0 is one core.
    broker_cores: Option<f64>,
}

impl Probe {
    fn of(report: &TokensReport, p99_target_ms: f64) -> Self {
        let latency = report.live.token_latency.as_ref();
        let p99 = latency.map(|l| l.p99_ms);
        let clean = report.verdict() == Verdict::Clean;
        let cpu = report.broker_cpu.as_ref();
        Self {
            generations: report.generations,
            within: clean && p99.is_some_and(|p99| p99 <= p99_target_ms),
            clean,
            tokens_per_sec: report.produce.tokens_per_sec,
            token_p50_ms: latency.map(|l| l.p50_ms),
            token_p99_ms: p99,
            token_p999_ms: latency.map(|l| l.p999_ms),
            broker_us_per_token: cpu.and_then(|c| c.micros_per_token),
            broker_cores: cpu
                .filter(|_| report.produce.seconds > 0.0)
                .map(|c| round3(c.seconds / report.produce.seconds)),
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} generations: {} tokens/s, token p50 {} ms, p99 {} ms, p99.9 {} ms, \
             broker {} µs per token on {} cores: {}",
            self.generations,
            display_option(self.tokens_per_sec),
            display_option(self.token_p50_ms),
            display_option(self.token_p99_ms),
            display_option(self.token_p999_ms),
            display_option(self.broker_us_per_token),
            display_option(self.broker_cores),
            match (self.within, self.clean) {
                (true, _) => "within",
                (false, true) => "beyond",
                (false, false) => "FAULTS (tokens lost or text not exact)",
            }
        )
    }
}

#[derive(Debug, Serialize)]
struct CapacityReport {
    mode: &'static str,
    url: String,
    p99_target_ms: f64,
    tokens_per_generation: u64,
    /// `None` (null): full speed.
    rate_per_generation: Option<u64>,
    viewers_per_generation: u64,
    /// The most generations probed within the target (`None`: not even one).
    capacity: Option<u64>,
    /// The fewest probed beyond it (`None`: `max_generations` was within).
    first_beyond: Option<u64>,
    max_generations: u64,
    probes: Vec<Probe>,
}

impl fmt::Display for CapacityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sse-bench capacity {}: generations of {} tokens at {}, {} viewers each, \
             within token p99 {} ms",
            self.url,
            self.tokens_per_generation,
            rate_label(self.rate_per_generation.unwrap_or(0)),
            self.viewers_per_generation,
            self.p99_target_ms
        )?;
        for probe in &self.probes {
            writeln!(f, "{:12}{probe}", "probe")?;
        }
        let answer = match (self.capacity, self.first_beyond) {
            (Some(within), Some(beyond)) => format!("{within} generations ({beyond} beyond)"),
            (Some(within), None) => {
                format!("{within} generations (the most probed: --max-generations)")
            }
            (None, _) => "not even the fewest probed".to_owned(),
        };
        writeln!(f, "{:12}{answer}", "capacity")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a broker that holds exactly `holds`
    /// generations; answers what it settled on and how many probes it took.
    fn search_against(holds: u64, start: u64, max: u64, resolution: u64) -> (Search, usize) {
        let mut search = Search::new(start, max, resolution);
        let mut probes = 0;
        while let Some(generations) = search.next() {
            assert!((1..=max).contains(&generations), "probed {generations}");
            search.record(generations, generations <= holds);
            probes += 1;
            assert!(probes < 64, "the search does not end");
        }
        (search, probes)
    }

    #[test]
    fn the_search_brackets_the_capacity_within_the_resolution() {
        for (holds, start) in [(437, 100), (437, 1000), (100, 100), (1999, 50), (3, 500)] {
            let (search, probes) = search_against(holds, start, 2000, 25);
            let (within, beyond) = (search.within.unwrap(), search.beyond.unwrap());
            assert!(
                within <= holds && holds < beyond,
                "{holds}: {within}..{beyond}"
            );
            assert!(beyond - within <= 25, "{holds}: {within}..{beyond}");
            assert!(probes <= 16, "{holds} from {start}: {probes} probes");
        }
    }

    #[test]
    fn a_broker_holding_the_maximum_is_reported_at_the_maximum() {
        let (search, _) = search_against(5000, 300, 2000, 25);
        assert_eq!((search.within, search.beyond), (Some(2000), None));
    }

    #[test]
    fn a_broker_holding_nothing_has_no_capacity() {
        let (search, _) = search_against(0, 300, 2000, 25);
        assert_eq!((search.within, search.beyond), (None, Some(1)));
    }
}
