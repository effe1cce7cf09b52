//! Graceful shutdown: the trigger is an input ([`ShutdownHandle`]), the drain
//! an explicit sequence ([`drain`]).

use std::sync::Arc;

use actix_web::dev::ServerHandle;
use tokio::sync::watch;

use crate::{
    actors::{persister::Drain, registry::Shutdown},
    app::AppState,
};

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

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::error!(error.message = %error, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Stop accepting connections, send every stream `event: shutdown`, store
/// every pending publish, then stop the server (in-flight requests finish,
/// streams end once their last frame is written).
pub async fn drain(server: ServerHandle, state: &AppState) {
    server.pause().await;
    let closed = state.registry.send(Shutdown).await.unwrap_or(0);
    tracing::info!(streams = closed, "sent shutdown to every stream");
    let _ = state.persister.send(Drain).await;
    tracing::info!("pending events stored");
    server.stop(true).await;
    tracing::info!("server stopped");
}
