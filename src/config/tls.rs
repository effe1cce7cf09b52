//! HTTPS in the broker: the certificate chain and key it serves, with ALPN
//! offering `h2` and `http/1.1` (browsers speak HTTP/2 only over TLS, and
//! only HTTP/2 lifts their six-connections-per-origin cap).

use std::path::PathBuf;

use serde::Serialize;

/// TLS, on when both files are given.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct TlsSettings {
    /// PEM certificate chain; with `--tls-key`: HTTPS, ALPN `h2` and
    /// `http/1.1`. Re-read when it changes, or on SIGHUP.
    #[arg(long = "tls-cert", env = "SSE_BROKER_TLS_CERT", global = true)]
    #[serde(rename = "tls_cert")]
    pub cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `--tls-cert`.
    #[arg(long = "tls-key", env = "SSE_BROKER_TLS_KEY", global = true)]
    #[serde(rename = "tls_key")]
    pub key: Option<PathBuf>,
}

impl TlsSettings {
    /// The certificate and key files when TLS is on.
    pub fn files(&self) -> Option<(PathBuf, PathBuf)> {
        Some((self.cert.clone()?, self.key.clone()?))
    }

    /// Both or neither.
    pub(super) fn errors(&self) -> Option<String> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Some("tls_cert is set without tls_key".into()),
            (None, Some(_)) => Some("tls_key is set without tls_cert".into()),
            _ => None,
        }
    }
}
