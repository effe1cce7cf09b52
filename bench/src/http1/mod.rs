//! Just enough HTTP/1.1 for the bench: keep-alive request/response for
//! publishing, and a long-lived streaming response for SSE ([`crate::sse`]).
//! Response heads are parsed by `httparse` ([`head`]); bodies (fixed length,
//! chunked, or until close) are decoded here ([`body`]).

mod body;
mod head;
mod upload;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpStream, lookup_host},
};
use url::{Host, Url};

pub use body::BodyFraming;
pub use head::{read_body, read_response_head};
pub use upload::{ChunkedUpload, expect_status};

/// A publish acknowledgement larger than this is refused.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Room made in a read buffer before each read.
pub const READ_RESERVE: usize = 4096;
/// How long to wait for the body of an error answer to a stream request.
pub const ERROR_BODY_WAIT: Duration = Duration::from_secs(2);
/// The broker under test: a loopback socket address, plus the headers
/// every request carries.
#[derive(Debug)]
pub struct Target {
    url: Url,
    address: SocketAddr,
    host_header: String,
    /// The URL's path without its trailing `/`, put before every endpoint.
    base_path: String,
    authorization: Option<String>,
}

impl Target {
    /// Checks that `url` is plain HTTP on loopback and resolves it.
    pub async fn resolve(url: &Url, token: Option<&str>) -> Result<Self> {
        if url.scheme() != "http" {
            bail!(
                "--url must be http:// (got {}://): the bench speaks plain HTTP/1.1",
                url.scheme()
            );
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let refuse = |host: &str| {
            anyhow::anyhow!(
                "refusing to load {host}: sse-bench only targets loopback \
                 (127.0.0.0/8, ::1 or localhost), as load is allowed on loopback only"
            )
        };
        let candidates: Vec<SocketAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![SocketAddr::from((ip, port))],
            Some(Host::Ipv6(ip)) => vec![SocketAddr::from((ip, port))],
            Some(Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => {
                lookup_host((name, port))
                    .await
                    .with_context(|| format!("resolving {name}"))?
                    .collect()
            }
            Some(Host::Domain(name)) => return Err(refuse(name)),
            None => bail!("--url has no host"),
        };
        if let Some(outside) = candidates
            .iter()
            .find(|address| !address.ip().is_loopback())
        {
            return Err(refuse(&outside.ip().to_string()));
        }
        let address = *candidates
            .first()
            .with_context(|| format!("{url} resolves to no address"))?;
        let host = url.host_str().unwrap_or_default();
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Self {
            url: url.clone(),
            address,
            host_header,
            base_path: url.path().trim_end_matches('/').to_owned(),
            authorization: token.map(|token| format!("Bearer {token}")),
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The request target for an endpoint (`/sse/publish`, with any query).
    pub fn path(&self, endpoint: &str) -> String {
        format!("{}{endpoint}", self.base_path)
    }

    pub async fn connect(&self) -> Result<TcpStream> {
        let socket = TcpStream::connect(self.address)
            .await
            .with_context(|| format!("connecting to {}", self.address))?;
        // Requests go out in one write; don't let Nagle hold them back.
        socket.set_nodelay(true).context("setting TCP_NODELAY")?;
        Ok(socket)
    }

    /// A whole request, head and body, ready for a single write.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sse-bench/{}\r\n",
            self.host_header,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(authorization) = &self.authorization {
            request.push_str(&format!("Authorization: {authorization}\r\n"));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

/// The start of a response body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

pub struct Response {
    pub status: u16,
    pub body: BytesMut,
}

struct Connection {
    socket: TcpStream,
    buf: BytesMut,
}

/// A keep-alive connection for request/response exchanges. After an
/// error, or when the broker asks to close, the next request opens a new
/// one. Requests that fail are not retried, so a publish is never sent
/// twice.
pub struct Client {
    target: Arc<Target>,
    connection: Option<Connection>,
}

impl Client {
    pub fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            connection: None,
        }
    }

    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }

    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> Result<Response> {
        let request = self.target.request(
            "POST",
            path,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
            ],
            body,
        );
        self.exchange(&request).await
    }

    pub async fn get(&mut self, path: &str) -> Result<Response> {
        let request = self.target.request("GET", path, &[], &[]);
        self.exchange(&request).await
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Response> {
        // Taken out so that an error drops the connection.
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => Connection {
                socket: self.target.connect().await?,
                buf: BytesMut::with_capacity(READ_RESERVE),
            },
        };
        connection
            .socket
            .write_all(request)
            .await
            .context("sending the request")?;
        let mut head = read_response_head(&mut connection.socket, &mut connection.buf).await?;
        let body = read_body(
            &mut connection.socket,
            &mut connection.buf,
            &mut head.framing,
            MAX_RESPONSE_BYTES,
        )
        .await?;
        // Leftover bytes would belong to no request: start afresh.
        if head.keep_alive && connection.buf.is_empty() {
            self.connection = Some(connection);
        }
        Ok(Response {
            status: head.status,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;

    #[tokio::test]
    async fn only_loopback_targets_are_accepted() {
        for accepted in [
            "http://127.0.0.1:8080",
            "http://127.3.4.5:1/prefix/",
            "http://[::1]:8080",
            "http://localhost:8080",
        ] {
            let url = Url::parse(accepted).unwrap();
            assert!(Target::resolve(&url, None).await.is_ok(), "{accepted}");
        }
        for refused in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "http://[2001:db8::1]/",
            "https://127.0.0.1:8443",
        ] {
            let url = Url::parse(refused).unwrap();
            assert!(Target::resolve(&url, None).await.is_err(), "{refused}");
        }
    }

    #[tokio::test]
    async fn endpoints_keep_the_url_path_as_a_prefix() {
        let url = Url::parse("http://127.0.0.1:9/broker/").unwrap();
        let target = Target::resolve(&url, None).await.unwrap();
        assert_eq!(target.path("/sse/publish"), "/broker/sse/publish");
    }
}
