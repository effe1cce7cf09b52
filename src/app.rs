//! `Application`: builds one broker instance from [`Settings`]: store, actors,
//! and the HTTP server on an already-bound listener, so callers (tests,
//! `sse-bench`) can ask for port 0 and read the real port back.

use std::{
    net::{SocketAddr, TcpListener},
    sync::Arc,
    time::Instant,
};

use actix::Actor;
use actix_web::dev::Server;
use anyhow::Context as _;
use secrecy::ExposeSecret;

use tokio::sync::watch;

use crate::{
    actors::{
        connection::StreamEnvironment,
        home::ActorHome,
        janitor::Janitor,
        live_tasks::LiveTasks,
        persister::Persister,
        redis_bridge::RedisBridge,
        registry::{Registry, WatchTaskEnds},
        task_reaper::TaskReaper,
    },
    auth::{Authenticator, JwtVerifier, Tickets},
    config::Settings,
    domain::EventTypeCatalog,
    http::{self, extract::BodyLimit, server::ServerSettings},
    limits::RateLimits,
    monitoring::{Census, HealthSampler, Sources},
    services::{
        events::EventService,
        operations::{OperatedActors, OperationsService},
        streams::StreamService,
        tasks::TaskService,
        upload_memory::UploadMemory,
    },
    shutdown::{self, Drainable, ShutdownHandle},
    state::AppState,
    store::EventStore,
    stream::{RecentFrames, replay::REPLAYS_AT_ONCE},
    telemetry::Metrics,
};

pub struct Application {
    port: u16,
    server: Server,
    drain: Drainable,
    metrics: Metrics,
    shutdown: ShutdownHandle,
}

impl Application {
    /// Opens the store, starts the actors and binds the listener. Must run
    /// inside an actix System (`#[actix_web::main]`, `#[actix_web::test]`).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Metrics::new(
            &settings.instance_id,
            crate::telemetry::otlp_metric_reader(),
        );
        Self::build_with_metrics(settings, metrics).await
    }

    pub async fn build_with_metrics(settings: Settings, metrics: Metrics) -> anyhow::Result<Self> {
        // What most often stops a start (the port taken, a certificate that
        // does not fit its key) is checked before any actor starts.
        let listener =
            bind_listener(settings.bind).with_context(|| format!("binding {}", settings.bind))?;
        let bound = listener.local_addr()?;
        let port = bound.port();
        let tls = match settings.tls.files() {
            Some((cert, key)) => {
                let tls = http::tls::Tls::load(cert, key, metrics.clone())
                    .context("loading the TLS certificate")?;
                tls.watch_for_renewals();
                Some(tls)
            }
            None => {
                actix_rt::spawn(http::tls::ignore_hangups());
                None
            }
        };
        let verifier =
            JwtVerifier::from_settings(&settings.auth, &metrics).context("loading the JWT key")?;
        let limits = Arc::new(RateLimits::new(&settings.limits, metrics.clone()));
        let store = EventStore::open(&settings.database, settings.store_timeout, metrics.clone())
            .await
            .context("opening the event store")?;
        let catalog = EventTypeCatalog::new(&settings.extra_event_types);
        let recent = RecentFrames::new(
            settings.replay_cache_events,
            settings.replay_cache_mib.saturating_mul(1 << 20),
            settings.retention,
        );
        let home = ActorHome::for_workers(settings.workers);
        // Live streams get what is committed after this id, and the Registry
        // and the bridge must agree on it before a stream can open: an
        // event committed by another instance between their two readings
        // would be past every stream's replay and before the bridge's start.
        let routed_through = store
            .latest_id()
            .await
            .context("reading the last stored event id")?;
        let registry = Registry::new(
            catalog.clone(),
            settings.max_connections,
            settings.queue_capacity,
            settings.instance_id.clone(),
            metrics.clone(),
        )
        .with_max_streams_per_user(settings.limits.max_streams_per_user)
        .with_recent_frames(recent.clone())
        .with_routed_through(routed_through);
        let registry = home.start(registry);
        let (bridge, bridge_status) = match &settings.redis_url {
            Some(url) => {
                let bridge = RedisBridge::new(
                    url.expose_secret(),
                    &settings.cluster_name,
                    settings.instance_id.clone(),
                    registry.clone(),
                    store.clone(),
                    routed_through,
                    metrics.clone(),
                )?;
                let status = bridge.status();
                (Some(home.start(bridge)), Some(status))
            }
            None => (None, None),
        };
        let router = match &bridge {
            Some(bridge) => bridge.clone().recipient(),
            None => registry.clone().recipient(),
        };
        let persister = home.start(Persister::new(
            store.clone(),
            router,
            settings.retention,
            metrics.clone(),
        ));
        let janitor = Janitor::new(
            registry.clone(),
            settings.cleanup_interval,
            settings.cleanup_batch_size,
            settings.stale_threshold,
            metrics.clone(),
        );
        let janitor_stats = janitor.stats();
        let janitor = janitor.start();
        let events = EventService::new(persister.clone(), catalog.clone());
        let streams = StreamService::new(
            StreamEnvironment {
                registry: registry.clone(),
                store: store.clone(),
                recent,
                replay_slots: Arc::new(tokio::sync::Semaphore::new(REPLAYS_AT_ONCE)),
                heartbeat: settings.heartbeat,
                queue_capacity: settings.queue_capacity,
                write_delay: settings.write_delay,
                token_refresh: settings.auth.token_refresh,
                retention: settings.retention,
                metrics: metrics.clone(),
            },
            catalog,
        )
        .with_cluster(bridge.clone());
        let live_tasks = home.start(LiveTasks::new(
            store.clone(),
            persister.clone(),
            metrics.clone(),
            settings.task_orphan_timeout,
        ));
        registry.do_send(WatchTaskEnds {
            recipient: live_tasks.clone().recipient(),
        });
        let shutdown = ShutdownHandle::new();
        let tasks = TaskService::new(
            store.clone(),
            live_tasks.clone(),
            metrics.clone(),
            settings.text_coalesce,
            settings.task_orphan_timeout,
            shutdown.clone(),
            UploadMemory::new(settings.upload_memory_mib * 1024 * 1024, metrics.clone()),
        )
        .with_rows_shared(settings.redis_url.is_some());
        TaskReaper::new(tasks.clone(), settings.task_orphan_timeout).start();
        #[cfg(target_os = "linux")]
        crate::actors::heap_trimmer::HeapTrimmer::new(metrics.clone()).start();
        let (census, census_reader) = watch::channel(Arc::new(Census {
            // The store just opened and migrated: it answers.
            store_ok: true,
            ..Census::default()
        }));
        let sources = Sources {
            census: census_reader,
            cleanup: janitor_stats,
            bridge: bridge_status,
            jwks: verifier.as_ref().and_then(|v| v.jwks().cloned()),
            store: store.clone(),
            metrics: metrics.clone(),
            started_at: Instant::now(),
        };
        HealthSampler::new(
            registry.clone(),
            census,
            sources.clone(),
            settings.stale_threshold,
            settings.health,
            limits.clone(),
        )
        .start();
        let operations = OperationsService::new(
            OperatedActors {
                registry: registry.clone(),
                janitor,
                bridge,
            },
            sources,
            &settings.instance_id,
            settings.max_connections,
            settings.health,
            settings.clone(),
            metrics.clone(),
        );
        let tickets = match &settings.redis_url {
            Some(url) => Tickets::in_redis(settings.auth.ticket_ttl, url, &settings.cluster_name)
                .context("the Redis URL for stream tickets")?,
            None => Tickets::local(settings.auth.ticket_ttl),
        };
        let state = AppState {
            events,
            streams,
            tasks,
            operations,
            auth: Authenticator::new(
                verifier,
                tickets,
                metrics.clone(),
                settings.auth.publish_within_projects,
            ),
            limits,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = http::server::serve(
            state,
            ServerSettings {
                workers: settings.workers,
                body_limit: BodyLimit {
                    max_bytes: settings.max_body_bytes,
                    read_timeout: settings.body_read_timeout,
                    max_upload_line_bytes: settings.max_upload_line_bytes,
                },
                cors_origins: settings.cors_origins.clone(),
                tls,
                actor_home: home.clone(),
            },
            listener,
        )?;
        tracing::info!(
            // The address bound: with port 0 asked, the one the system gave.
            address = %bound,
            port,
            scheme,
            instance_id = %settings.instance_id,
            store = store.backend(),
            actors_thread = home.thread(),
            "sse-broker listening"
        );
        Ok(Self {
            port,
            server,
            drain: Drainable {
                live_tasks,
                persister,
                registry,
            },
            metrics,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Triggers the graceful drain from anywhere (signals, tests).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The instance's metrics (flushed by the caller after the drain).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Serves until the shutdown handle is triggered, then drains in order:
    /// stop accepting, `event: shutdown` to every stream, flush stored
    /// events, stop the server.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = actix_rt::spawn(self.server);
        tokio::select! {
            result = &mut server => {
                return result.context("server task")?.context("HTTP server");
            }
            () = self.shutdown.wait() => {}
        }
        shutdown::drain(handle, &self.drain).await;
        server
            .await
            .context("server task")?
            .context("HTTP server")?;
        Ok(())
    }
}

/// Pending connections the kernel queues before `accept`: a reconnect
/// storm of thousands of EventSource clients must not overflow it.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds like `TcpListener::bind`, but with [`LISTEN_BACKLOG`] (std uses 128).
fn bind_listener(address: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}
