//! `HealthSampler`: once a second, takes the census of every stream from
//! the Registry and a round trip to the store, and publishes them for the
//! monitoring answers ([`super::Sources`]); every few seconds it also
//! writes the health rules' inputs and verdict into the gauges
//! (`sse_health_status`, the cleanup error rate and state, the Redis link,
//! the store's `sse_store_failing` and `sse_store_oldest_operation_seconds`;
//! `sse_store_up` after each round trip),
//! so Prometheus alerts fire from pushed or scraped metrics alone. It also
//! lets the rate limiters forget idle keys.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, WrapFuture};
use tokio::sync::watch;

use super::{Census, OverallHealth, Snapshot, Sources, StoreFailing};
use crate::{
    actors::registry::{Registry, TakeCensus},
    config::HealthThresholds,
    limits::RateLimits,
};

/// How old the census behind a monitoring answer may be. A pass over
/// 10,000 streams takes about a millisecond of the Registry's time.
const CENSUS_INTERVAL: Duration = Duration::from_secs(1);
/// Gauges every this many censuses: the queue-depth distribution is
/// sampled at this steady rate.
const GAUGES_EVERY: u32 = 5;
/// Rate-limiter keys idle this long are dropped (their budget is full again).
const FORGET_IDLE_KEYS_EVERY: u32 = 60;

pub struct HealthSampler {
    registry: Addr<Registry>,
    sources: Sources,
    census: watch::Sender<Arc<Census>>,
    stale_threshold: Duration,
    thresholds: HealthThresholds,
    limits: Arc<RateLimits>,
    ticks: u32,
    sampling: bool,
    /// Since when the store's round trip has failed (`None`: it answers),
    /// so that an outage is logged where it begins and ends, with or
    /// without traffic to log it.
    store_silent_since: Option<Instant>,
}

impl HealthSampler {
    /// The sampler, and the census channel its [`Sources`] read.
    pub fn new(
        registry: Addr<Registry>,
        census: watch::Sender<Arc<Census>>,
        sources: Sources,
        stale_threshold: Duration,
        thresholds: HealthThresholds,
        limits: Arc<RateLimits>,
    ) -> Self {
        Self {
            registry,
            sources,
            census,
            stale_threshold,
            thresholds,
            limits,
            ticks: 0,
            sampling: false,
            store_silent_since: None,
        }
    }

    fn sample(&mut self, ctx: &mut Context<Self>) {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(FORGET_IDLE_KEYS_EVERY) {
            self.limits.forget_idle_keys();
        }
        // On the clock, whether or not the last census is back: the store's
        // part of the verdict is kept by its operations, not by the census,
        // and a census waiting on a failing store (its round trip and
        // probes, a store timeout each) held the gauges, and the alerts
        // read from them, 15-20 s behind `/health`.
        if self.ticks.is_multiple_of(GAUGES_EVERY) {
            self.publish_gauges(&self.sources.snapshot());
        }
        // A store that hangs must not pile up samples.
        if self.sampling {
            return;
        }
        self.sampling = true;
        let registry = self.registry.clone();
        let store = self.sources.store.clone();
        let stale_threshold_ms = self.stale_threshold.as_millis() as i64;
        let take = async move {
            let registry = registry
                .send(TakeCensus { stale_threshold_ms })
                .await
                .ok()?;
            // Failing operations are re-checked here: reads are rare, and
            // writes stop where a load balancer took the instance out. All
            // at once, so a hanging store (2 s each) still gets a round
            // trip every 2 s, not one per the three checks' sum.
            let health = store.health();
            let (ping, _, _) = futures_util::join!(
                store.ping(),
                async {
                    if health.reads.failing.is_some() {
                        let _ = store.probe_reads().await;
                    }
                },
                async {
                    if health.writes.failing.is_some() {
                        let _ = store.probe_writes().await;
                    }
                },
            );
            let store_failure = ping.err().map(|error| error.to_string());
            let store_ok = store_failure.is_none();
            Some((Census { registry, store_ok }, store_failure))
        };
        // The first census is published as soon as it is taken.
        let first = self.ticks == 1;
        ctx.spawn(take.into_actor(self).map(move |census, sampler, _| {
            sampler.sampling = false;
            if let Some((census, store_failure)) = census {
                sampler.note_store_answer(store_failure);
                sampler.census.send_replace(Arc::new(census));
                if first {
                    sampler.publish_gauges(&sampler.sources.snapshot());
                }
            }
        }));
    }

    /// The store's round trip, in `sse_store_up` at once (an alert's `for`
    /// needs the state, not a count of failures), and in the log where an
    /// outage begins and ends: an idle instance has no publish to fail.
    fn note_store_answer(&mut self, failure: Option<String>) {
        self.sources.metrics.set_store_up(failure.is_none());
        match (self.store_silent_since, failure) {
            (None, Some(error)) => {
                tracing::warn!(
                    error = %error,
                    "the event store does not answer its health round trip; publishes and task \
                     writes are refused until it does"
                );
                self.store_silent_since = Some(Instant::now());
            }
            (Some(since), None) => {
                tracing::info!(
                    silent_for_secs = since.elapsed().as_secs_f64(),
                    "the event store answers its health round trip again"
                );
                self.store_silent_since = None;
            }
            _ => {}
        }
    }

    fn publish_gauges(&self, snapshot: &Snapshot) {
        let metrics = &self.sources.metrics;
        let health = snapshot.health(&self.thresholds);
        let status = match health.overall_health {
            OverallHealth::Healthy => 0,
            OverallHealth::Degraded => 1,
            OverallHealth::Unhealthy => 2,
        };
        metrics.set_health_status(status, health.alerts.len());
        let last_run_secs = snapshot
            .cleanup
            .last_run_at_ms
            .map_or(0.0, |ms| ms as f64 / 1000.0);
        metrics.set_cleanup_state(
            snapshot.cleanup.cleanup_task_running,
            snapshot.cleanup_error_rate(),
            last_run_secs,
        );
        metrics.set_store_health(
            StoreFailing::of(&snapshot.store.writes) as i64,
            StoreFailing::of(&snapshot.store.reads) as i64,
            snapshot
                .store
                .oldest_in_flight
                .as_ref()
                .map_or(0.0, |oldest| oldest.elapsed.as_secs_f64()),
        );
        if let Some(bridge) = &snapshot.bridge {
            metrics.set_redis_bridge(snapshot.redis_up(), bridge.own_redis_count);
        }
    }
}

impl Actor for HealthSampler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sample(ctx);
        ctx.run_interval(CENSUS_INTERVAL, |sampler, ctx| sampler.sample(ctx));
    }
}
