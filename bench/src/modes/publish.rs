//! `publish`: publishing with no stream open.

use std::{fmt, sync::Arc};

use anyhow::Result;
use serde::Serialize;
use tokio::time::Instant;

use super::{SPARE_FDS, Verdict, ensure_fd_budget};
use crate::{
    cli::PublishArgs,
    http1::Target,
    latency::unix_micros,
    publishers::{PublishJob, publish_all},
    report::{PublishStats, emit},
};

pub async fn run(args: &PublishArgs, target: Arc<Target>, deadline: Instant) -> Result<Verdict> {
    ensure_fd_budget(args.concurrency + SPARE_FDS);
    eprintln!(
        "sse-bench: publishing {} events over {} connections to {}",
        args.events,
        args.concurrency,
        target.url()
    );
    let job = PublishJob::new(&target, &args.payload, unix_micros(), args.events, None);
    let outcome = publish_all(job, args.concurrency, deadline).await?;
    let report = PublishReport {
        mode: "publish",
        url: target.url().to_string(),
        event_type: args.payload.event_type.clone(),
        payload_bytes: args.payload.payload_bytes,
        batch: args.payload.batch,
        concurrency: args.concurrency,
        live_only: args.payload.live_only,
        publish: PublishStats::from_outcome(&outcome),
    };
    emit(&report, args.common.json)?;
    Ok(if report.publish.is_clean() {
        Verdict::Clean
    } else {
        Verdict::Faults
    })
}

#[derive(Debug, Serialize)]
pub struct PublishReport {
    mode: &'static str,
    url: String,
    event_type: String,
    payload_bytes: usize,
    batch: u64,
    concurrency: u64,
    live_only: bool,
    publish: PublishStats,
}

impl fmt::Display for PublishReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sse-bench publish {}: type {}, {}-byte pad, batch {}, {} connections{}",
            self.url,
            self.event_type,
            self.payload_bytes,
            self.batch,
            self.concurrency,
            if self.live_only { ", live only" } else { "" }
        )?;
        write!(f, "{:12}{}", "publish", self.publish)
    }
}
