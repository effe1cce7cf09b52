//! The publishers: `--publishers` keep-alive connections sharing one job.

mod outcome;

use std::{
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tokio::time::{Instant, sleep_until, timeout_at};

pub use self::outcome::PublishOutcome;
use self::outcome::PublisherLog;
use crate::{
    cli::PayloadArgs,
    http1::{self, Target},
    latency::{micros, new_histogram, unix_micros},
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
    let mut outcome = PublishOutcome::empty(job.seqs.end)?;
    for publisher in publishers {
        outcome.add(publisher.await.context("a publisher task failed")??)?;
    }
    outcome.events_requested = job.taken();
    Ok(outcome)
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
