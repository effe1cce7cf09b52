//! The publishers: `--publishers` keep-alive connections sharing one job.

use std::{
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::{
    cli::PayloadArgs,
    http1::{self, Target},
    latency::{micros, new_histogram, unix_micros},
    seq_set::SeqSet,
};

/// A publish run's fixed parameters, shared by its publisher connections.
pub struct PublishJob {
    target: Arc<Target>,
    path: String,
    event_type: String,
    run_id: u64,
    pad: String,
    /// The seqs this job publishes.
    seqs: Range<u64>,
    batch: u64,
    live_only: bool,
    /// Events per second; `None` publishes as fast as acknowledged.
    rate: Option<u64>,
    /// No publisher takes new seqs from this moment (duration-bound runs).
    stop_at: Option<Instant>,
    /// The next seq not yet taken by a publisher.
    next_seq: AtomicU64,
    /// Events acknowledged so far, for progress lines while the job runs.
    acked: AtomicU64,
}

impl PublishJob {
    pub fn new(
        target: &Arc<Target>,
        payload: &PayloadArgs,
        run_id: u64,
        total_events: u64,
        rate: Option<u64>,
    ) -> Arc<Self> {
        Self::with_seqs(target, payload, run_id, 0..total_events, rate, None)
    }

    /// A job publishing `seqs` (a later phase of a run starts past the
    /// earlier phases' seqs), taking no new seq from `stop_at` on.
    pub fn with_seqs(
        target: &Arc<Target>,
        payload: &PayloadArgs,
        run_id: u64,
        seqs: Range<u64>,
        rate: Option<u64>,
        stop_at: Option<Instant>,
    ) -> Arc<Self> {
        Arc::new(Self {
            target: Arc::clone(target),
            path: target.path("/sse/publish"),
            event_type: payload.event_type.clone(),
            run_id,
            pad: "x".repeat(payload.payload_bytes),
            next_seq: AtomicU64::new(seqs.start),
            seqs,
            batch: payload.batch,
            live_only: payload.live_only,
            rate,
            stop_at,
            acked: AtomicU64::new(0),
        })
    }

    /// Events acknowledged so far.
    pub fn acked_so_far(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// How many seqs publishers took (each is sent once taken).
    fn taken(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed).min(self.seqs.end) - self.seqs.start
    }

    /// Writes the request body for `seqs`: one event object, or an array
    /// when the run publishes in batches.
    fn encode(&self, body: &mut String, seqs: Range<u64>, sent_us: u64) {
        use std::fmt::Write as _;

        body.clear();
        let as_array = self.batch > 1;
        if as_array {
            body.push('[');
        }
        let persist = if self.live_only {
            r#","persist":false"#
        } else {
            ""
        };
        for (index, seq) in seqs.enumerate() {
            if index > 0 {
                body.push(',');
            }
            // Writing into a String cannot fail. The event type and pad need
            // no escaping: both are checked to be plain ASCII.
            let _ = write!(
                body,
                r#"{{"event_type":"{}"{persist},"data":{{"run":{},"seq":{seq},"sent_us":{sent_us},"pad":"{}"}}}}"#,
                self.event_type, self.run_id, self.pad
            );
        }
        if as_array {
            body.push(']');
        }
    }
}

/// The acknowledgement of `POST /sse/publish`.
#[derive(Debug, Deserialize)]
struct PublishAccepted {
    ids: Vec<serde_json::Value>,
}

/// What one publisher connection did.
struct PublisherLog {
    acked: Vec<Range<u64>>,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    timed_out: bool,
    request_latency: Histogram<u64>,
    first_send: Option<Instant>,
    last_ack: Option<Instant>,
}

impl PublisherLog {
    fn note_error(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }
}

/// Takes batches of seqs from the job until none are left, each at its slot
/// in the `--rate` schedule, and publishes them on one keep-alive connection.
async fn run_publisher(
    job: Arc<PublishJob>,
    schedule_start: Instant,
    deadline: Instant,
) -> Result<PublisherLog> {
    let mut client = http1::Client::new(Arc::clone(&job.target));
    let mut log = PublisherLog {
        acked: Vec::new(),
        requests: 0,
        errors: 0,
        first_error: None,
        timed_out: false,
        request_latency: new_histogram()?,
        first_send: None,
        last_ack: None,
    };
    let mut body = String::new();
    loop {
        // Checked before taking seqs, so that every seq taken is sent.
        if job.stop_at.is_some_and(|stop_at| Instant::now() >= stop_at) {
            break;
        }
        let first = job.next_seq.fetch_add(job.batch, Ordering::Relaxed);
        if first >= job.seqs.end {
            break;
        }
        let seqs = first..(first + job.batch).min(job.seqs.end);
        let due = match job.rate {
            Some(rate) => {
                let offset = (first - job.seqs.start) as f64 / rate as f64;
                schedule_start + Duration::from_secs_f64(offset)
            }
            None => Instant::now(),
        };
        if due >= deadline {
            log.timed_out = true;
            break;
        }
        sleep_until(due).await;

        job.encode(&mut body, seqs.clone(), unix_micros());
        let sent = Instant::now();
        log.first_send.get_or_insert(sent);
        log.requests += 1;
        let response =
            match timeout_at(deadline, client.post_json(&job.path, body.as_bytes())).await {
                Ok(response) => response,
                Err(_) => {
                    log.note_error("a publish request outlived --timeout-secs".to_owned());
                    log.timed_out = true;
                    break;
                }
            };
        let acknowledged = response.and_then(|response| {
            if response.status != 202 {
                bail!(
                    "HTTP {}: {}",
                    response.status,
                    http1::snippet(&response.body)
                );
            }
            let accepted: PublishAccepted =
                serde_json::from_slice(&response.body).with_context(|| {
                    format!("unexpected 202 body: {}", http1::snippet(&response.body))
                })?;
            Ok(accepted.ids.len())
        });
        match acknowledged {
            Ok(ids) if ids as u64 == seqs.end - seqs.start => {
                let now = Instant::now();
                log.request_latency
                    .saturating_record(micros(now.duration_since(sent)));
                log.last_ack = Some(now);
                job.acked.fetch_add(ids as u64, Ordering::Relaxed);
                log.acked.push(seqs);
            }
            Ok(ids) => log.note_error(format!(
                "published {} events, the broker answered {ids} ids",
                seqs.end - seqs.start
            )),
            Err(error) => log.note_error(format!("{error:#}")),
        }
    }
    Ok(log)
}

/// Every publisher connection's work, merged.
pub struct PublishOutcome {
    /// Seqs taken and sent (all of the job's, unless it was stopped early).
    pub events_requested: u64,
    pub acked: SeqSet,
    pub events_acked: u64,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub timed_out: bool,
    pub request_latency: Histogram<u64>,
    pub first_send: Option<Instant>,
    pub last_ack: Option<Instant>,
}

/// Publishes the job over `connections` connections and waits for all of them.
pub async fn publish_all(
    job: Arc<PublishJob>,
    connections: u64,
    deadline: Instant,
) -> Result<PublishOutcome> {
    let schedule_start = Instant::now();
    let publishers: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(run_publisher(Arc::clone(&job), schedule_start, deadline)))
        .collect();
    let mut outcome = PublishOutcome {
        events_requested: 0,
        acked: SeqSet::new(job.seqs.end),
        events_acked: 0,
        requests: 0,
        errors: 0,
        first_error: None,
        timed_out: false,
        request_latency: new_histogram()?,
        first_send: None,
        last_ack: None,
    };
    for publisher in publishers {
        let log = publisher.await.context("a publisher task failed")??;
        for seqs in log.acked {
            outcome.events_acked += seqs.end - seqs.start;
            seqs.for_each(|seq| {
                outcome.acked.insert(seq);
            });
        }
        outcome.requests += log.requests;
        outcome.errors += log.errors;
        if outcome.first_error.is_none() {
            outcome.first_error = log.first_error;
        }
        outcome.timed_out |= log.timed_out;
        outcome
            .request_latency
            .add(&log.request_latency)
            .context("merging request latencies")?;
        outcome.first_send = earliest(outcome.first_send, log.first_send);
        outcome.last_ack = outcome.last_ack.max(log.last_ack);
    }
    outcome.events_requested = job.taken();
    Ok(outcome)
}

impl PublishOutcome {
    /// Adds a later phase's work (its seqs beyond this one's), so that
    /// deliveries are checked against every phase at once.
    pub fn absorb(&mut self, later: PublishOutcome) -> Result<()> {
        let mut acked = later.acked;
        acked.union_with(&self.acked);
        self.acked = acked;
        self.events_requested += later.events_requested;
        self.events_acked += later.events_acked;
        self.requests += later.requests;
        self.errors += later.errors;
        if self.first_error.is_none() {
            self.first_error = later.first_error;
        }
        self.timed_out |= later.timed_out;
        self.request_latency
            .add(&later.request_latency)
            .context("merging request latencies")?;
        self.first_send = earliest(self.first_send, later.first_send);
        self.last_ack = self.last_ack.max(later.last_ack);
        Ok(())
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;

    fn payload(batch: u64, live_only: bool) -> PayloadArgs {
        PayloadArgs {
            event_type: "file_change".into(),
            payload_bytes: 3,
            batch,
            live_only,
        }
    }

    async fn loopback_target() -> Arc<Target> {
        let url = Url::parse("http://127.0.0.1:8080").unwrap();
        Arc::new(Target::resolve(&url, None).await.unwrap())
    }

    #[tokio::test]
    async fn a_single_event_is_published_as_an_object() {
        let job = PublishJob::new(&loopback_target().await, &payload(1, false), 9, 10, None);
        let mut body = String::new();
        job.encode(&mut body, 4..5, 1234);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"event_type": "file_change",
            "data": {"run": 9, "seq": 4, "sent_us": 1234, "pad": "xxx"}})
        );
    }

    #[tokio::test]
    async fn a_job_past_its_stop_time_takes_no_seqs() {
        // Nothing listens on port 9: a publisher that ignored the stop
        // time would show up as a failed request.
        let url = Url::parse("http://127.0.0.1:9").unwrap();
        let target = Arc::new(Target::resolve(&url, None).await.unwrap());
        let job = PublishJob::with_seqs(
            &target,
            &payload(1, false),
            9,
            5..10,
            None,
            Some(Instant::now()),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let outcome = publish_all(job, 2, deadline).await.unwrap();
        assert_eq!(
            (outcome.events_requested, outcome.requests, outcome.errors),
            (0, 0, 0)
        );
    }

    fn outcome(capacity: u64, acked: &[u64], first_send: Instant) -> PublishOutcome {
        let mut set = SeqSet::new(capacity);
        acked.iter().for_each(|&seq| {
            set.insert(seq);
        });
        PublishOutcome {
            events_requested: acked.len() as u64 + 1,
            acked: set,
            events_acked: acked.len() as u64,
            requests: acked.len() as u64 + 1,
            errors: 1,
            first_error: Some(format!("lost at {capacity}")),
            timed_out: false,
            request_latency: new_histogram().unwrap(),
            first_send: Some(first_send),
            last_ack: Some(first_send),
        }
    }

    #[test]
    fn a_later_phase_is_absorbed_into_the_earlier_one() {
        let early = Instant::now();
        let late = early + Duration::from_secs(1);
        let mut seed = outcome(1, &[0], early);
        seed.absorb(outcome(5, &[1, 2, 4], late)).unwrap();
        assert_eq!(seed.acked.len(), 4);
        assert!(!seed.acked.insert(0) && !seed.acked.insert(4) && seed.acked.insert(3));
        assert_eq!((seed.events_acked, seed.events_requested), (4, 6));
        assert_eq!((seed.requests, seed.errors), (6, 2));
        assert_eq!(seed.first_error.as_deref(), Some("lost at 1"));
        assert_eq!((seed.first_send, seed.last_ack), (Some(early), Some(late)));
    }

    #[tokio::test]
    async fn batches_are_published_as_arrays() {
        let job = PublishJob::new(&loopback_target().await, &payload(3, true), 9, 10, None);
        let mut body = String::new();
        job.encode(&mut body, 8..10, 1);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let events = value.as_array().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1]["data"]["seq"], 9);
        assert_eq!(events[1]["persist"], false);
    }
}
