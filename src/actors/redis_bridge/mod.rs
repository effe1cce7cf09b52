//! `RedisBridge`: cluster mode over Redis pub/sub. The only file that
//! imports `redis`.
//!
//! Every instance publishes its committed batches to one channel and routes
//! only what comes back from it, so all instances see one sequence. Redis
//! order alone is not trusted: each batch carries `previous_id`, the last id
//! committed before it (batches commit one at a time under the store's
//! commit lock). A batch whose `previous_id` is ahead of what this instance
//! has routed means one was missed or overtaken; the bridge then reads the
//! missing events from the store first. Ids at or below `last_routed` are
//! skipped. So every stream gets every event once, in increasing id order.
//!
//! When Redis is unreachable the bridge routes this instance's publishes
//! itself and tails the store for the others', reports `down` to `/health`,
//! and the RESP3 connection manager reconnects and resubscribes by itself.
//! It also keeps this instance's connection count in Redis (with expiry)
//! and reads everyone's, for cluster totals.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, WrapFuture};
use redis::{AsyncCommands, PushInfo, aio::ConnectionManager};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

mod cluster_drop;
mod cluster_listing;
mod cluster_renewal;
mod cluster_subscription;
mod control_call;
mod echoes;
mod inbound;
mod ordering;
mod presence;
mod status;
mod strangers;
mod wire;

pub use cluster_drop::{ClusterUnreachable, DropClusterStream};
pub use cluster_listing::{ClusterListingError, ListClusterConnections};
pub use cluster_renewal::RenewClusterStream;
pub use cluster_subscription::UpdateClusterSubscription;
use echoes::LocalDeliveries;
pub use status::{BridgeStatus, InstancePresence, LinkState};
use strangers::Strangers;
pub use strangers::{FOREIGN_WARNING_FOR, ForeignSighting};
use wire::{Envelope, WireEvent};

use super::registry::{Registry, Route};
use crate::{domain::EventId, store::EventStore, telemetry::Metrics};

// Redis names, under the deployment's `cluster_name`:
// `{cluster}:events` is the channel every instance publishes to and
// subscribes to; `{cluster}:control` carries scatter/gather requests;
// `{cluster}:instance:{id}` holds each instance's presence.
/// How often the status readers see is refreshed.
const STATUS_PERIOD: Duration = Duration::from_secs(1);
/// While Redis is down, how often the store is read for other instances' events.
const TAIL_PERIOD: Duration = Duration::from_millis(500);
const RECONNECT_PERIOD: Duration = Duration::from_secs(1);
const REPAIR_PAGE: i64 = 500;
/// Wait before reading the store again after a failed repair.
const REPAIR_RETRY: Duration = Duration::from_millis(500);
/// Pages read by one repair; a longer backlog continues on the next tick.
const REPAIR_MAX_PAGES: usize = 20;

pub struct RedisBridge {
    client: redis::Client,
    channel: String,
    control_channel: String,
    presence_prefix: String,
    instance_id: String,
    registry: Addr<Registry>,
    store: EventStore,
    publisher: Option<ConnectionManager>,
    /// Held so the subscription stays open; reconnects by itself.
    subscriber: Option<ConnectionManager>,
    state: LinkState,
    last_error: Option<String>,
    reconnects: u64,
    repairs: u64,
    last_routed: EventId,
    /// This instance's batches it delivered itself, to drop their echoes.
    local: LocalDeliveries,
    repairing: bool,
    connecting: bool,
    /// A PING on the subscriber is in flight (see `probe`).
    probing: bool,
    instances: Vec<InstancePresence>,
    /// This instance's count as Redis held it before the latest refresh,
    /// and what this instance had written there: `None` when not comparable.
    own_redis_count: Option<usize>,
    own_written_count: Option<usize>,
    /// See [`BridgeStatus::own_record_misses`].
    own_record_misses: u32,
    /// See [`BridgeStatus::presence_refused`].
    presence_refused: Option<String>,
    /// The count written by the last successful refresh, and the link
    /// epoch it was written in.
    last_written: Option<(usize, u64)>,
    /// A presence refresh is under way: two interleaved would compare a
    /// fresh count with an old key (a false mismatch).
    presence_refreshing: bool,
    /// Counts the link's failures. Redis may lose our key with its data
    /// (a restart): a key read back in another epoch than it was written
    /// in proves nothing.
    link_epoch: u64,
    /// Where readers find the link's status (see [`RedisBridge::status`]).
    status: watch::Sender<BridgeStatus>,
    /// Messages of another deployment, and malformed ones.
    strangers: Strangers,
    metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("invalid Redis URL: {0}")]
    Url(String),
}

impl RedisBridge {
    /// `routed_through`: the last id stored before any stream could open,
    /// the Registry's starting point too; live routing begins after it.
    pub fn new(
        redis_url: &str,
        cluster_name: &str,
        instance_id: String,
        registry: Addr<Registry>,
        store: EventStore,
        routed_through: EventId,
        metrics: Metrics,
    ) -> Result<Self, BridgeError> {
        // Automatic resubscription after a reconnect needs RESP3 pushes.
        let url = if redis_url.contains("protocol=") {
            redis_url.to_owned()
        } else if redis_url.contains('?') {
            format!("{redis_url}&protocol=resp3")
        } else {
            format!("{redis_url}?protocol=resp3")
        };
        let client = redis::Client::open(url).map_err(|e| BridgeError::Url(e.to_string()))?;
        let strangers = Strangers::new(Some(store.identity()), metrics.clone());
        Ok(Self {
            client,
            channel: format!("{cluster_name}:events"),
            control_channel: format!("{cluster_name}:control"),
            presence_prefix: format!("{cluster_name}:instance:"),
            instance_id,
            registry,
            store,
            publisher: None,
            subscriber: None,
            state: LinkState::Connecting,
            last_error: None,
            reconnects: 0,
            repairs: 0,
            last_routed: routed_through,
            local: LocalDeliveries::default(),
            repairing: false,
            connecting: false,
            probing: false,
            instances: Vec::new(),
            own_redis_count: None,
            own_written_count: None,
            own_record_misses: 0,
            presence_refused: None,
            last_written: None,
            presence_refreshing: false,
            link_epoch: 0,
            status: watch::Sender::new(BridgeStatus::default()),
            strangers,
            metrics,
        })
    }

    /// The link's status as it changes, readable without asking the actor.
    pub fn status(&self) -> watch::Receiver<BridgeStatus> {
        self.status.subscribe()
    }

    fn publish_status(&self) {
        self.status.send_replace(BridgeStatus {
            state: self.state,
            last_error: self.last_error.clone(),
            reconnects: self.reconnects,
            last_routed_id: self.last_routed.0,
            repairs: self.repairs,
            instances: self.instances.clone(),
            own_redis_count: self.own_redis_count,
            own_written_count: self.own_written_count,
            own_record_misses: self.own_record_misses,
            presence_refused: self.presence_refused.clone(),
            foreign: self.strangers.sighting(),
            id_clash_at: self.strangers.id_clash_at(),
        });
    }

    fn mark_down(&mut self, reason: String) {
        self.link_epoch += 1;
        if self.state != LinkState::Down {
            tracing::warn!(reason = %reason, "redis link down: routing locally and tailing the store");
        }
        self.state = LinkState::Down;
        self.last_error = Some(reason);
        // The gauge moves with the link, as /health does, not at the
        // sampler's next turn (up to 5 s later).
        self.metrics.set_redis_bridge(false, None);
        self.publish_status();
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting || self.subscriber.is_some() {
            return;
        }
        self.connecting = true;
        let client = self.client.clone();
        let channels = [self.channel.clone(), self.control_channel.clone()];
        let (push_sender, pushes) = mpsc::unbounded_channel::<PushInfo>();
        let connect = async move {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_push_sender(push_sender)
                .set_automatic_resubscription()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_max_delay(Duration::from_secs(2));
            let mut subscriber = client.get_connection_manager_with_config(config).await?;
            subscriber.subscribe(&channels).await?;
            let publisher_config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_max_delay(Duration::from_secs(2));
            let publisher = client
                .get_connection_manager_with_config(publisher_config)
                .await?;
            Ok::<_, redis::RedisError>((subscriber, publisher))
        };
        ctx.spawn(connect.into_actor(self).map(move |result, act, ctx| {
            act.connecting = false;
            match result {
                Ok((subscriber, publisher)) => {
                    ctx.add_stream(UnboundedReceiverStream::new(pushes));
                    act.subscriber = Some(subscriber);
                    act.publisher = Some(publisher);
                    act.link_up(ctx);
                }
                Err(error) => act.mark_down(format!("cannot connect to Redis: {error}")),
            }
        }));
    }

    /// While the link is not up, PINGs the subscriber's connection. The
    /// connection manager gives up reconnecting after a few retries (about
    /// 5-10 s) and only tries again when a command fails, and nothing else
    /// sends commands on the subscriber: without this, an outage longer than
    /// its retries leaves the bridge down for good. A PING that succeeds
    /// means the link (resubscribed first, on the same connection) is back,
    /// also when only a publish or presence write had failed.
    fn probe(&mut self, ctx: &mut Context<Self>) {
        let Some(mut subscriber) = self.subscriber.clone().filter(|_| !self.probing) else {
            return;
        };
        self.probing = true;
        let ping = async move { redis::cmd("PING").query_async::<()>(&mut subscriber).await };
        ctx.spawn(ping.into_actor(self).map(|result, act, ctx| {
            act.probing = false;
            if result.is_ok() && act.state != LinkState::Up {
                act.link_up(ctx);
            }
        }));
    }

    fn link_up(&mut self, ctx: &mut Context<Self>) {
        let was_down = self.state == LinkState::Down;
        self.state = LinkState::Up;
        self.last_error = None;
        self.metrics.set_redis_bridge(true, None);
        if was_down {
            self.reconnects += 1;
            self.metrics.record_redis_reconnect();
            tracing::info!(reconnects = self.reconnects, "redis link up");
        } else {
            // The first link since start: the operator sees cluster mode came up.
            tracing::info!(channel = %self.channel, "redis link up: clustered");
        }
        self.publish_status();
        // Anything published while we were not subscribed is in the store.
        self.repair(None, ctx);
    }

    fn publish(&mut self, route: Route, ctx: &mut Context<Self>) {
        let Some(publisher) = self
            .publisher
            .clone()
            .filter(|_| self.state == LinkState::Up)
        else {
            return self.accept(route, ctx);
        };
        let batch = self.local.next_batch();
        let envelope = Envelope {
            origin: self.instance_id.clone(),
            store: self.strangers.own_store(),
            batch: Some(batch),
            previous_id: route.previous_id.map(|id| id.0),
            events: route.events.iter().map(WireEvent::from).collect(),
        };
        let payload = match serde_json::to_vec(&envelope) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(error.message = %error, "cannot encode a batch for Redis");
                return self.accept(route, ctx);
            }
        };
        let mut connection = publisher;
        let channel = self.channel.clone();
        let send = async move { connection.publish::<_, _, i64>(channel, payload).await };
        ctx.spawn(send.into_actor(self).map(move |result, act, ctx| {
            if let Err(error) = result {
                // Not known to be on the bus: deliver here. Should it
                // arrive after all (a hang, not a refusal), its echo is
                // dropped: by id, and by batch for events without one.
                act.mark_down(format!("publish failed: {error}"));
                act.local.delivered_here(batch);
                act.accept(route, ctx);
            }
        }));
    }
}

impl Actor for RedisBridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.publish_status();
        self.connect(ctx);
        // The routed id and repair count move with every batch: readers
        // see them at most this late, without a message per batch.
        ctx.run_interval(STATUS_PERIOD, |act, _| act.publish_status());
        ctx.run_interval(RECONNECT_PERIOD, |act, ctx| {
            if act.subscriber.is_none() {
                act.connect(ctx);
            } else if act.state != LinkState::Up {
                act.probe(ctx);
            }
        });
        ctx.run_interval(TAIL_PERIOD, |act, ctx| {
            if act.state != LinkState::Up && !act.repairing {
                act.repair(None, ctx);
            }
        });
        ctx.run_interval(presence::PRESENCE_PERIOD, Self::refresh_presence);
    }
}

/// This instance's committed batches, to publish to every instance.
impl Handler<Route> for RedisBridge {
    type Result = ();

    fn handle(&mut self, route: Route, ctx: &mut Context<Self>) {
        self.publish(route, ctx);
    }
}
