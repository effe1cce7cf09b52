//! Graceful shutdown: the trigger is an input ([`ShutdownHandle`]), the drain
//! an explicit sequence ([`drain`]).

use std::{sync::Arc, time::Duration};

use actix::Addr;
use actix_web::dev::ServerHandle;
use tokio::sync::watch;

use crate::{
    actors::{
        live_tasks::{FlushHeld, LiveTasks},
        persister::{Drain, Persister},
        registry::{Registry, RoutedThrough, Shutdown},
    },
    domain::EventId,
};

/// What the drain stops, in order: the publishes, then the streams.
pub struct Drainable {
    /// Writes the text uploads hold back before the Persister stops.
    pub live_tasks: Addr<LiveTasks>,
    pub persister: Addr<Persister>,
    pub registry: Addr<Registry>,
}

/// Cloneable trigger of the drain.
#[derive(Clone)]
pub struct ShutdownHandle {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownHandle {
    pub fn new() -> Self {
        Self {
            sender: Arc::new(watch::channel(false).0),
        }
    }

    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub async fn wait(&self) {
        let mut receiver = self.sender.subscribe();
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }
}

/// The signal that asked the broker to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Terminate,
    Interrupt,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        }
    }

    /// The shell's convention for a process ended by this signal (128 + n).
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Terminate => 143,
            Self::Interrupt => 130,
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signal() -> StopSignal {
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::error!(error.message = %error, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    return StopSignal::Interrupt;
                }
            };
        tokio::select! {
            _ = terminate.recv() => StopSignal::Terminate,
            _ = tokio::signal::ctrl_c() => StopSignal::Interrupt,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        StopSignal::Interrupt
    }
}

/// The first signal starts the drain; a second one ends the process at
/// once, as an operator pressing Ctrl-C twice expects. Nothing acknowledged
/// is lost (a publish is answered after its commit); the streams just get
/// no `shutdown` frame and reconnect on their own.
pub async fn on_signals(trigger: ShutdownHandle) {
    let first = signal().await;
    tracing::info!(signal = first.name(), "shutting down");
    trigger.trigger();
    let second = signal().await;
    tracing::warn!(
        signal = second.name(),
        "second signal during the drain: exiting now, without the drain"
    );
    std::process::exit(second.exit_code());
}

/// How long the drain waits for stored events to reach the streams before
/// saying goodbye (in a cluster they come back through Redis). Past it,
/// clients get what is missing when they resume elsewhere.
const DELIVERY_GRACE: Duration = Duration::from_secs(2);

/// Stop accepting connections and publishes, store what is pending, deliver
/// it, then send every stream `event: shutdown` and stop the server
/// (in-flight requests finish, streams end once their last frame is written).
pub async fn drain(server: ServerHandle, state: &Drainable) {
    server.pause().await;
    // Its writes reach the Persister's mailbox ahead of the Drain.
    let _ = state.live_tasks.send(FlushHeld).await;
    let last_stored = state.persister.send(Drain).await.ok().flatten();
    // "Answered", not "stored": a batch the store refused was answered
    // with its error, and logged as such.
    tracing::info!("every pending publish answered; new publishes refused");
    if let Some(last_stored) = last_stored {
        deliver_stored(state, last_stored).await;
    }
    let closed = state.registry.send(Shutdown).await.unwrap_or(0);
    tracing::info!(streams = closed, "sent shutdown to every stream");
    server.stop(true).await;
    tracing::info!("server stopped");
}

/// Waits, at most [`DELIVERY_GRACE`], until the Registry has routed
/// `latest`, the last event this instance stored, so streams get it before
/// their `shutdown` frame.
async fn deliver_stored(state: &Drainable, latest: EventId) {
    let deadline = tokio::time::Instant::now() + DELIVERY_GRACE;
    loop {
        match state.registry.send(RoutedThrough).await {
            Ok(routed) if routed >= latest => return,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(routed) => {
                tracing::warn!(
                    routed_through = routed.0,
                    latest_stored = latest.0,
                    "stored events not delivered before shutdown; clients get them on resume"
                );
                return;
            }
            Err(_) => return,
        }
    }
}
