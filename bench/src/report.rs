//! What the modes report: the parts the reports share and how they print.

use std::{
    fmt,
    io::{self, Write as _},
};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    latency::LatencySummary,
    publishers::PublishOutcome,
    streams::{StreamEnd, StreamLog},
};

/// Prints a report on stdout, as JSON or as text.
pub fn emit<R: Serialize + fmt::Display>(report: &R, json: bool) -> Result<()> {
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, report).context("writing the JSON report")?;
        writeln!(out).context("writing the report")?;
    } else {
        write!(out, "{report}").context("writing the report")?;
    }
    out.flush().context("writing the report")
}

pub use crate::{
    figures::{display_option, rate_per_sec, round3},
    streams::ConnectStats,
};

#[derive(Debug, Serialize)]
pub struct PublishStats {
    events_requested: u64,
    events_acked: u64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    timed_out: bool,
    /// From the first request written to the last acknowledgement.
    seconds: Option<f64>,
    events_per_sec: Option<f64>,
    request_latency: Option<LatencySummary>,
}

impl PublishStats {
    pub fn from_outcome(outcome: &PublishOutcome) -> Self {
        let seconds = match (outcome.first_send, outcome.last_ack) {
            (Some(first), Some(last)) => Some(last.duration_since(first).as_secs_f64()),
            _ => None,
        };
        Self {
            events_requested: outcome.events_requested,
            events_acked: outcome.events_acked,
            requests: outcome.requests,
            errors: outcome.errors,
            first_error: outcome.first_error.clone(),
            timed_out: outcome.timed_out,
            seconds: seconds.map(round3),
            events_per_sec: seconds.and_then(|s| rate_per_sec(outcome.events_acked, s)),
            request_latency: LatencySummary::of(&outcome.request_latency),
        }
    }

    pub fn is_clean(&self) -> bool {
        self.errors == 0 && !self.timed_out && self.events_acked == self.events_requested
    }

    pub fn events_per_sec(&self) -> Option<f64> {
        self.events_per_sec
    }
}

impl fmt::Display for PublishStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} of {} events acknowledged in {} s: {} events/s ({} requests, {} errors{})",
            self.events_acked,
            self.events_requested,
            display_option(self.seconds),
            display_option(self.events_per_sec),
            self.requests,
            self.errors,
            if self.timed_out { ", timed out" } else { "" }
        )?;
        if let Some(latency) = &self.request_latency {
            writeln!(f, "{:12}request {latency}", "")?;
        }
        if let Some(error) = &self.first_error {
            writeln!(f, "{:12}first error: {error}", "")?;
        }
        Ok(())
    }
}

/// Deliveries counted against the acknowledged publishes.
#[derive(Debug, Serialize)]
pub struct DeliveryStats {
    /// Streams read to the end × events acknowledged.
    expected: u64,
    /// Frames of this run's events, duplicates included.
    received: u64,
    /// Lost: acknowledged, never delivered to a stream.
    missing: u64,
    duplicates: u64,
    /// Delivered, but their publish request was never acknowledged.
    unexpected: u64,
    /// Informational with several publishers: their requests race, so the
    /// store may commit seqs in another order.
    seq_out_of_order: u64,
    /// Out of order: an `id:` not above the stream's previous one.
    id_order_violations: u64,
    foreign_frames: u64,
    streams: u64,
    streams_complete: u64,
    streams_closed_by_broker: u64,
    streams_failed: u64,
    first_stream_error: Option<String>,
    /// The first lost event found: its stream (in opening order) and seq.
    first_lost: Option<(usize, u64)>,
    /// From the first publish request to the last delivery.
    seconds: Option<f64>,
    deliveries_per_sec: Option<f64>,
}

impl DeliveryStats {
    pub fn tally(logs: &[StreamLog], publish: &PublishOutcome) -> Self {
        let mut stats = Self {
            expected: publish.events_acked * logs.len() as u64,
            received: 0,
            missing: 0,
            duplicates: 0,
            unexpected: 0,
            seq_out_of_order: 0,
            id_order_violations: 0,
            foreign_frames: 0,
            streams: logs.len() as u64,
            streams_complete: 0,
            streams_closed_by_broker: 0,
            streams_failed: 0,
            first_stream_error: None,
            first_lost: None,
            seconds: None,
            deliveries_per_sec: None,
        };
        let mut last_receive = None;
        for (stream, log) in logs.iter().enumerate() {
            let delivered = log.seen.common_with(&publish.acked);
            if delivered < publish.events_acked && stats.first_lost.is_none() {
                stats.first_lost = log
                    .seen
                    .first_missing_of(&publish.acked)
                    .map(|seq| (stream, seq));
            }
            stats.received += log.received;
            stats.missing += publish.events_acked - delivered;
            stats.duplicates += log.duplicates;
            stats.unexpected += log.seen.len() - delivered;
            stats.seq_out_of_order += log.seq_out_of_order;
            stats.id_order_violations += log.id_order_violations;
            stats.foreign_frames += log.foreign_frames;
            if delivered == publish.events_acked {
                stats.streams_complete += 1;
            }
            match &log.end {
                StreamEnd::Stopped => {}
                StreamEnd::ClosedByBroker => stats.streams_closed_by_broker += 1,
                StreamEnd::Failed(error) => {
                    stats.streams_failed += 1;
                    stats
                        .first_stream_error
                        .get_or_insert_with(|| error.clone());
                }
            }
            last_receive = last_receive.max(log.last_receive);
        }
        if let (Some(first), Some(last)) = (publish.first_send, last_receive) {
            let seconds = last.duration_since(first).as_secs_f64();
            stats.seconds = Some(round3(seconds));
            stats.deliveries_per_sec = rate_per_sec(stats.received, seconds);
        }
        stats
    }

    pub fn is_clean(&self) -> bool {
        self.missing == 0
            && self.duplicates == 0
            && self.id_order_violations == 0
            && self.streams_closed_by_broker == 0
            && self.streams_failed == 0
    }

    /// Frames of this run's events received, duplicates included.
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn deliveries_per_sec(&self) -> Option<f64> {
        self.deliveries_per_sec
    }

    /// Lost, duplicated, out of order, and how the streams ended: the
    /// lines every mode prints, without the throughput.
    pub fn correctness(&self) -> Correctness<'_> {
        Correctness(self)
    }
}

impl fmt::Display for DeliveryStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} of {} expected received in {} s: {} deliveries/s",
            self.received,
            self.expected,
            display_option(self.seconds),
            display_option(self.deliveries_per_sec)
        )?;
        write!(f, "{:12}{}", "", self.correctness())
    }
}

/// See [`DeliveryStats::correctness`].
pub struct Correctness<'a>(&'a DeliveryStats);

impl fmt::Display for Correctness<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.0;
        writeln!(
            f,
            "lost {}, duplicated {}, out of order {} (ids not increasing); unexpected {}, \
             foreign frames {}, seq reordered by racing publishers {} (informational)",
            stats.missing,
            stats.duplicates,
            stats.id_order_violations,
            stats.unexpected,
            stats.foreign_frames,
            stats.seq_out_of_order
        )?;
        if let Some((stream, seq)) = stats.first_lost {
            writeln!(
                f,
                "{:12}first lost: stream #{stream} never received seq {seq}",
                ""
            )?;
        }
        writeln!(
            f,
            "{:12}streams complete {} of {}, closed by the broker {}, failed {}",
            "",
            stats.streams_complete,
            stats.streams,
            stats.streams_closed_by_broker,
            stats.streams_failed
        )?;
        if let Some(error) = &stats.first_stream_error {
            writeln!(f, "{:12}first stream error: {error}", "")?;
        }
        Ok(())
    }
}

/// How resuming streams fared across their connections.
#[derive(Debug, Serialize)]
pub struct ResumeStats {
    /// Connections that reached their `connected` frame, every stream's.
    connections: u64,
    /// Reconnects the bench asked for.
    reconnects_requested: u64,
    /// Connections the broker ended or that failed, and refused reopens.
    losses: u64,
    streams_with_losses: u64,
    first_loss: Option<String>,
    /// `replay_truncated` frames: a resume found missed events gone.
    replay_truncated: u64,
    /// Frames of other types than the run's, `connected` and `heartbeat`.
    other_frames: u64,
}

impl ResumeStats {
    pub fn tally(logs: &[StreamLog]) -> Self {
        Self {
            connections: logs.iter().map(|log| log.connections).sum(),
            reconnects_requested: logs.iter().map(|log| log.reconnects).sum(),
            losses: logs.iter().map(|log| log.losses).sum(),
            streams_with_losses: logs.iter().filter(|log| log.losses > 0).count() as u64,
            first_loss: logs.iter().find_map(|log| log.first_loss.clone()),
            replay_truncated: logs.iter().map(|log| log.replay_truncated).sum(),
            other_frames: logs.iter().map(|log| log.other_frames).sum(),
        }
    }

    pub fn is_clean(&self) -> bool {
        self.losses == 0 && self.replay_truncated == 0
    }
}

impl fmt::Display for ResumeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} connections ({} reconnects asked for); {} lost or refused on {} streams; \
             replay_truncated {}, other frames {}",
            self.connections,
            self.reconnects_requested,
            self.losses,
            self.streams_with_losses,
            self.replay_truncated,
            self.other_frames
        )?;
        if let Some(loss) = &self.first_loss {
            writeln!(f, "{:12}first loss: {loss}", "")?;
        }
        Ok(())
    }
}
