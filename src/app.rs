//! `Application`: builds one broker instance from [`Settings`]: store, actors,
//! and the HTTP server on an already-bound listener, so callers (tests,
//! `sse-bench`) can ask for port 0 and read the real port back.

use std::{
    net::{SocketAddr, TcpListener},
    sync::Arc,
    time::Instant,
};

use actix::{Actor, Addr};
use actix_web::dev::Server;
use anyhow::Context as _;
use secrecy::ExposeSecret;

use crate::{
    actors::{
        connection::StreamEnvironment, health_sampler::HealthSampler, janitor::Janitor,
        persister::Persister, redis_bridge::RedisBridge, registry::Registry,
        task_reaper::TaskReaper,
    },
    auth::JwtVerifier,
    config::Settings,
    domain::EventTypeCatalog,
    http,
    limits::RateLimits,
    services::tasks::TaskService,
    services::{events::EventService, streams::StreamService},
    shutdown::{self, ShutdownHandle},
    store::EventStore,
    telemetry::Metrics,
};

/// What every handler can reach: the actors' addresses and shared services.
#[derive(Clone)]
pub struct AppState {
    pub events: EventService,
    pub streams: StreamService,
    pub tasks: TaskService,
    pub registry: Addr<Registry>,
    pub janitor: Addr<Janitor>,
    /// Set in cluster mode (`REDIS_URL`).
    pub bridge: Option<Addr<RedisBridge>>,
    pub persister: Addr<Persister>,
    pub store: EventStore,
    pub metrics: Metrics,
    pub settings: Arc<Settings>,
    /// `None` while authentication is off.
    pub verifier: Option<JwtVerifier>,
    pub limits: Arc<RateLimits>,
    pub started_at: Instant,
}

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
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
        let verifier =
            JwtVerifier::from_settings(&settings.auth, &metrics).context("loading the JWT key")?;
        let limits = Arc::new(RateLimits::new(&settings.limits, metrics.clone()));
        let store = EventStore::open(&settings.database, settings.store_timeout, metrics.clone())
            .await
            .context("opening the event store")?;
        let catalog = EventTypeCatalog::new(&settings.extra_event_types);
        let registry = Registry::new(
            catalog.clone(),
            settings.max_connections,
            settings.queue_capacity,
            settings.instance_id.clone(),
            metrics.clone(),
        )
        .with_max_streams_per_user(settings.limits.max_streams_per_user)
        .start();
        let bridge = match &settings.redis_url {
            Some(url) => Some(
                RedisBridge::new(
                    url.expose_secret(),
                    &settings.cluster_name,
                    settings.instance_id.clone(),
                    registry.clone(),
                    store.clone(),
                    metrics.clone(),
                )?
                .start(),
            ),
            None => None,
        };
        let router = match &bridge {
            Some(bridge) => bridge.clone().recipient(),
            None => registry.clone().recipient(),
        };
        let persister =
            Persister::new(store.clone(), router, settings.retention, metrics.clone()).start();
        let janitor = Janitor::new(
            registry.clone(),
            settings.cleanup_interval,
            settings.cleanup_batch_size,
            settings.stale_threshold,
            metrics.clone(),
        )
        .start();
        let events = EventService::new(persister.clone(), catalog.clone());
        let streams = StreamService::new(
            StreamEnvironment {
                registry: registry.clone(),
                store: store.clone(),
                heartbeat: settings.heartbeat,
                queue_capacity: settings.queue_capacity,
                metrics: metrics.clone(),
            },
            catalog,
        );
        let tasks = TaskService::new(store.clone(), events.clone(), metrics.clone());
        TaskReaper::new(tasks.clone(), settings.task_orphan_timeout).start();
        let state = AppState {
            events,
            streams,
            tasks,
            registry,
            janitor,
            bridge,
            persister,
            store,
            metrics,
            settings: Arc::new(settings),
            verifier,
            limits,
            started_at: Instant::now(),
        };
        HealthSampler::new(state.clone()).start();
        let listener = bind_listener(state.settings.bind)
            .with_context(|| format!("binding {}", state.settings.bind))?;
        let port = listener.local_addr()?.port();
        let server = http::server::serve(state.clone(), listener)?;
        tracing::info!(
            address = %state.settings.bind,
            port,
            instance_id = %state.settings.instance_id,
            store = state.store.backend(),
            "sse-broker listening"
        );
        Ok(Self {
            port,
            server,
            state,
            shutdown: ShutdownHandle::new(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Triggers the graceful drain from anywhere (signals, tests).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
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
        shutdown::drain(handle, &self.state).await;
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
