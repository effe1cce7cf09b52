//! HTTPS with ALPN: HTTP/2 for the clients that offer it (every browser),
//! HTTP/1.1 for the rest. Browsers open at most six HTTP/1.1 connections per
//! origin, so a seventh `EventSource` (a seventh tab) would wait forever;
//! over HTTP/2 every stream of an origin shares one connection.

mod certificates;

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use actix_http::Protocol;
use actix_rt::net::TcpStream;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

pub use certificates::{CertificateError, Certificates};

use super::head_guard::{HeadGuard, RefusalMarker};
use crate::telemetry::Metrics;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS side of the server: the acceptor, and the certificates it
/// serves (reloadable).
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certificates: Arc<Certificates>,
    metrics: Metrics,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("certificates", &self.certificates)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate and key (start-up fails if they do not load).
    pub fn load(
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        metrics: Metrics,
    ) -> Result<Self, CertificateError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificates = Arc::new(Certificates::load(cert, key, provider.clone())?);
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(CertificateError::Protocols)?
            .with_no_client_auth()
            .with_cert_resolver(certificates.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        metrics.declare_tls();
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificates,
            metrics,
        })
    }

    /// Reads the certificate and key as [`Self::load`] does, serving
    /// nothing: `check-config` refuses what a start would, and answers what
    /// a start would warn of (a certificate outside its validity period or
    /// near its end).
    pub fn check(
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    ) -> Result<Option<String>, CertificateError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = Certificates::load(cert.clone(), key, provider)?;
        Ok(loaded.validity_problem(&cert))
    }

    /// Watches the files and SIGHUP for a renewed certificate; call once,
    /// on the broker's main runtime.
    pub fn watch_for_renewals(&self) {
        actix_rt::spawn(self.certificates.clone().watch(self.metrics.clone()));
    }

    /// Runs the handshake, then picks the protocol ALPN agreed on. HTTP/1.1
    /// requests get the same head checks as over plain TCP; HTTP/2 has its
    /// own framing and limits (actix-http's).
    pub async fn accept(
        &self,
        stream: TcpStream,
        marker: RefusalMarker,
    ) -> io::Result<(TlsConnection, Protocol)> {
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await;
        let tls = match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                self.metrics.record_tls_handshake_failure("error");
                tracing::debug!(error.message = %error, "TLS handshake failed");
                return Err(error);
            }
            Err(_) => {
                self.metrics.record_tls_handshake_failure("timeout");
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ));
            }
        };
        let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok(if http2 {
            (TlsConnection::Http2(tls), Protocol::Http2)
        } else {
            (
                TlsConnection::Http1(HeadGuard::new(tls, marker)),
                Protocol::Http1,
            )
        })
    }
}

/// Without TLS there is nothing to reload, but SIGHUP must not stop the
/// broker (its default action): a unit's `ExecReload` may send it to any
/// instance.
pub async fn ignore_hangups() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received: nothing to reload (no --tls-cert)");
    }
}

/// One accepted TLS connection, as the HTTP service reads it.
pub enum TlsConnection {
    Http1(HeadGuard<TlsStream<TcpStream>>),
    Http2(TlsStream<TcpStream>),
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Http1(io) => Pin::new(io).poll_read(cx, buf),
            Self::Http2(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Http1(io) => Pin::new(io).poll_write(cx, buf),
            Self::Http2(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Http1(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Self::Http2(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Http1(io) => io.is_write_vectored(),
            Self::Http2(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Http1(io) => Pin::new(io).poll_flush(cx),
            Self::Http2(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Http1(io) => Pin::new(io).poll_shutdown(cx),
            Self::Http2(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
