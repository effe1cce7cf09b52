//! The certificate the broker serves, swapped in place when its files
//! change or on SIGHUP, so a renewal (certbot, cert-manager, a rotated
//! secret) needs no restart and drops no stream.
//!
//! rustls asks [`Certificates`] for the certificate at every handshake, so
//! a reload takes effect for the next connection; connections already open
//! keep the session they negotiated. A file read half-written during a
//! renewal fails to load: the certificate in use stays, and the next change
//! of either file (checked every second) is tried, as is SIGHUP.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use crate::telemetry::Metrics;

/// How often the files' modification times are compared.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often files that failed to load are tried again while they do not
/// change (a change is tried at the next check).
const FAILED_RETRY_INTERVAL: Duration = Duration::from_secs(60);
/// A certificate this close to its end is said to be expiring.
const EXPIRY_NOTICE: Duration = Duration::from_secs(14 * 24 * 3600);

/// The certificate's and the key's modification time and size.
type FileStamps = [Option<(SystemTime, u64)>; 2];

/// Why a certificate and key could not be served.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    // Each says its cause itself (logs print the message alone), so the
    // cause is not also a `source` that error reports would print twice.
    #[error("reading {path}: {}", pem_words(cause))]
    Read {
        path: PathBuf,
        cause: rustls::pki_types::pem::Error,
    },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    #[error("no TLS protocol version is available: {0}")]
    Protocols(rustls::Error),
    #[error("the key in {key} does not fit the certificate in {cert}: {cause}")]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        cause: rustls::Error,
    },
}

/// The certificate and key files, and what was loaded from them.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Loads both files now: a broker with a broken certificate does not
    /// start.
    pub fn load(
        cert: PathBuf,
        key: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, CertificateError> {
        let current = read(&cert, &key, &provider)?;
        if let Some(problem) = validity_problem(&cert, &current, SystemTime::now()) {
            tracing::warn!(cert = %cert.display(), "{problem}");
        }
        Ok(Self {
            cert,
            key,
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again and serves what they hold from the next
    /// handshake on; on failure keeps serving the current certificate.
    pub fn reload(&self, why: &'static str, metrics: &Metrics) -> Result<(), CertificateError> {
        match read(&self.cert, &self.key, &self.provider) {
            Ok(loaded) => {
                let chain = loaded.cert.len();
                if let Some(problem) = validity_problem(&self.cert, &loaded, SystemTime::now()) {
                    tracing::warn!(cert = %self.cert.display(), trigger = why, "{problem}");
                }
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
                metrics.record_tls_reload(true);
                tracing::info!(
                    cert = %self.cert.display(),
                    chain_certificates = chain,
                    trigger = why,
                    "TLS certificate reloaded"
                );
                Ok(())
            }
            Err(error) => {
                metrics.record_tls_reload(false);
                tracing::warn!(
                    error.message = %error,
                    trigger = why,
                    "TLS certificate reload failed; serving the previous certificate"
                );
                Err(error)
            }
        }
    }

    /// Reloads whenever either file's modification time or size changes,
    /// and on every SIGHUP. Runs until the broker stops.
    pub async fn watch(self: Arc<Self>, metrics: Metrics) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(error.message = %error, "SIGHUP will not reload the certificate");
                None
            }
        };
        let mut seen = self.stamps();
        // The files of the last failed load, and when it failed: the same
        // broken files are tried again only now and then, so a broken pair
        // left in place does not log a warning every second.
        let mut failed: Option<(FileStamps, tokio::time::Instant)> = None;
        let mut ticks = tokio::time::interval(CHECK_INTERVAL);
        loop {
            let why = tokio::select! {
                _ = ticks.tick() => "file change",
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                } => "SIGHUP",
            };
            let now = self.stamps();
            let retry_due = match &failed {
                Some((stamps, at)) => *stamps != now || at.elapsed() >= FAILED_RETRY_INTERVAL,
                None => true,
            };
            if why == "SIGHUP" || (now != seen && retry_due) {
                // `seen` moves only past a certificate that loaded.
                match self.reload(why, &metrics) {
                    Ok(()) => {
                        seen = now;
                        failed = None;
                    }
                    Err(_) => failed = Some((now, tokio::time::Instant::now())),
                }
            }
        }
    }

    /// [`validity_problem`] of the certificate served now.
    pub fn validity_problem(&self, cert: &Path) -> Option<String> {
        let current = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        validity_problem(cert, &current, SystemTime::now())
    }

    fn stamps(&self) -> FileStamps {
        [&self.cert, &self.key].map(|path| {
            let metadata = fs::metadata(path).ok()?;
            Some((metadata.modified().ok()?, metadata.len()))
        })
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// What is wrong with the served (first) certificate's validity period at
/// `now`, if anything: expired, not valid yet, or expiring within
/// [`EXPIRY_NOTICE`]. Clients refuse the first two; rustls serves any.
pub fn validity_problem(cert: &Path, loaded: &CertifiedKey, now: SystemTime) -> Option<String> {
    leaf_problem(cert, loaded.cert.first()?, now)
}

fn leaf_problem(cert: &Path, leaf: &[u8], now: SystemTime) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let validity = parsed.validity();
    let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() as i64;
    let (from, until) = (validity.not_before, validity.not_after);
    let path = cert.display();
    if now > until.timestamp() {
        Some(format!(
            "the TLS certificate in {path} expired on {until}: clients refuse it"
        ))
    } else if now < from.timestamp() {
        Some(format!(
            "the TLS certificate in {path} is not valid before {from}: clients refuse it until then"
        ))
    } else if until.timestamp() - now < EXPIRY_NOTICE.as_secs() as i64 {
        Some(format!(
            "the TLS certificate in {path} expires on {until}, in less than 14 days: renew it"
        ))
    } else {
        None
    }
}

/// A PEM error with its markers and lines as text: rustls prints them as
/// lists of byte values (`[67, 69, 82, …]` for `CERTIFICATE`).
fn pem_words(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { end_marker } => format!(
            "a PEM section has no end line (-----END {}-----): the file is cut short?",
            String::from_utf8_lossy(end_marker)
        ),
        Error::IllegalSectionStart { line } => format!(
            "a malformed PEM start line: {}",
            String::from_utf8_lossy(line)
        ),
        other => other.to_string(),
    }
}

fn read(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertificateError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|cause| CertificateError::Read {
            path: cert.to_owned(),
            cause,
        })?;
    if chain.is_empty() {
        return Err(CertificateError::NoCertificate(cert.to_owned()));
    }
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(|cause| CertificateError::Read {
            path: key.to_owned(),
            cause,
        })?;
    CertifiedKey::from_der(chain, private_key, provider).map_err(|cause| {
        CertificateError::Unusable {
            cert: cert.to_owned(),
            key: key.to_owned(),
            cause,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate valid from `from` to `until`, DER.
    fn certificate(from: (i32, u8, u8), until: (i32, u8, u8)) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        let key = rcgen::KeyPair::generate().expect("a key");
        params.self_signed(&key).expect("signed").der().to_vec()
    }

    /// 2026-06-01, midday.
    fn june_2026() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_315_200)
    }

    #[test]
    fn a_certificate_outside_or_near_the_end_of_its_validity_is_said() {
        let path = Path::new("cert.pem");
        let said = |from, until| leaf_problem(path, &certificate(from, until), june_2026());

        let expired = said((2025, 1, 1), (2026, 1, 1)).expect("expired");
        assert!(
            expired.contains("expired on") && expired.contains("cert.pem"),
            "{expired}"
        );
        let early = said((2026, 9, 1), (2027, 9, 1)).expect("not yet valid");
        assert!(early.contains("not valid before"), "{early}");
        let ending = said((2025, 6, 1), (2026, 6, 10)).expect("expiring");
        assert!(ending.contains("in less than 14 days"), "{ending}");
        assert_eq!(said((2026, 1, 1), (2027, 1, 1)), None, "valid for months");
    }

    #[test]
    fn a_pem_file_cut_short_is_said_in_words_not_byte_values() {
        let dir = tempfile::tempdir().expect("a directory");
        let cut = dir.path().join("cert.pem");
        let key = rcgen::KeyPair::generate().expect("a key");
        let whole = rcgen::CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .self_signed(&key)
            .expect("signed")
            .pem();
        std::fs::write(&cut, &whole[..whole.len() / 2]).expect("written");
        let keyfile = dir.path().join("key.pem");
        std::fs::write(&keyfile, key.serialize_pem()).expect("written");
        let provider = rustls::crypto::ring::default_provider();
        let said = read(&cut, &keyfile, &provider)
            .expect_err("cut short")
            .to_string();
        assert!(
            said.contains("no end line (-----END CERTIFICATE-----)") && !said.contains("[45,"),
            "{said}"
        );
    }
}
