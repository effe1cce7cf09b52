//! `HealthSampler`: every few seconds, takes the same [`Snapshot`] that
//! `/health` and `/sse/monitoring` take and writes the health rules' inputs
//! and verdict into the gauges (`sse_health_status`, cleanup error rate and
//! state, Redis link state, the store's `sse_store_failing` and
//! `sse_store_oldest_operation_seconds`), so Prometheus alerts fire from
//! pushed or scraped metrics alone. It also lets the rate limiters forget
//! idle keys.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};

use crate::{
    app::AppState,
    monitoring::{OverallHealth, Snapshot, StoreFailing},
};

const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Rate-limiter keys idle this long are dropped (their budget is full again).
const FORGET_IDLE_KEYS_EVERY: u32 = 12;

pub struct HealthSampler {
    state: AppState,
    ticks: u32,
    sampling: bool,
}

impl HealthSampler {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            ticks: 0,
            sampling: false,
        }
    }

    fn sample(&mut self, ctx: &mut Context<Self>) {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(FORGET_IDLE_KEYS_EVERY) {
            self.state.limits.forget_idle_keys();
        }
        // A store that hangs must not pile up samples.
        if self.sampling {
            return;
        }
        self.sampling = true;
        let state = self.state.clone();
        ctx.spawn(
            async move { Snapshot::sample(&state).await.ok() }
                .into_actor(self)
                .map(|snapshot, sampler, _| {
                    sampler.sampling = false;
                    if let Some(snapshot) = snapshot {
                        sampler.publish(&snapshot);
                    }
                }),
        );
    }

    fn publish(&self, snapshot: &Snapshot) {
        let metrics = &self.state.metrics;
        let health = snapshot.health(&self.state.settings.health);
        metrics.set_health_status(match health.overall_health {
            OverallHealth::Healthy => 0,
            OverallHealth::Degraded => 1,
            OverallHealth::Unhealthy => 2,
        });
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
            metrics.set_redis_bridge(
                bridge.state == crate::actors::redis_bridge::LinkState::Up,
                bridge.own_redis_count,
            );
        }
    }
}

impl Actor for HealthSampler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sample(ctx);
        ctx.run_interval(SAMPLE_INTERVAL, |sampler, ctx| sampler.sample(ctx));
    }
}
