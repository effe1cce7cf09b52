//! A request whose body is written piece by piece in the chunked transfer
//! encoding, the way a producer streams a generation as its model writes it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use tokio::{io::AsyncWriteExt, net::TcpStream, time::timeout};

use super::{
    MAX_RESPONSE_BYTES, READ_RESERVE, Response, Target, read_body, read_response_head, snippet,
};

/// How long to look for the broker's answer once a write failed (it may
/// have answered early, e.g. a cancelled task's 409, and closed).
const EARLY_ANSWER_WAIT: Duration = Duration::from_secs(2);

pub struct ChunkedUpload {
    socket: TcpStream,
    path: String,
}

impl ChunkedUpload {
    /// Sends the request head; the body follows with [`Self::send`].
    pub async fn start(target: &Target, path: &str, content_type: &str) -> Result<Self> {
        let mut socket = target.connect().await?;
        let head = target.request(
            "POST",
            path,
            &[
                ("Content-Type", content_type),
                ("Transfer-Encoding", "chunked"),
                ("Accept", "application/json"),
            ],
            &[],
        );
        socket
            .write_all(&head)
            .await
            .with_context(|| format!("sending the head of POST {path}"))?;
        Ok(Self {
            socket,
            path: path.to_owned(),
        })
    }

    /// Writes `data` as one chunk.
    pub async fn send(&mut self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut chunk = Vec::with_capacity(data.len() + 12);
        chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(b"\r\n");
        if let Err(error) = self.socket.write_all(&chunk).await {
            return Err(self.early_answer(error.into()).await);
        }
        Ok(())
    }

    /// Ends the body and reads the broker's answer.
    pub async fn finish(mut self) -> Result<Response> {
        if let Err(error) = self.socket.write_all(b"0\r\n\r\n").await {
            return Err(self.early_answer(error.into()).await);
        }
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> Result<Response> {
        let mut buf = BytesMut::with_capacity(READ_RESERVE);
        let mut head = read_response_head(&mut self.socket, &mut buf)
            .await
            .with_context(|| format!("reading the answer to POST {}", self.path))?;
        let body = read_body(
            &mut self.socket,
            &mut buf,
            &mut head.framing,
            MAX_RESPONSE_BYTES,
        )
        .await?;
        Ok(Response {
            status: head.status,
            body,
        })
    }

    /// The error to report for a failed write: the broker's own answer
    /// when it sent one before closing.
    async fn early_answer(&mut self, write_error: anyhow::Error) -> anyhow::Error {
        match timeout(EARLY_ANSWER_WAIT, self.read_answer()).await {
            Ok(Ok(answer)) => anyhow::anyhow!(
                "POST {} answered HTTP {} before its body ended: {}",
                self.path,
                answer.status,
                snippet(&answer.body)
            ),
            _ => write_error.context(format!("writing the body of POST {}", self.path)),
        }
    }
}

/// Checks that an answer has `status`, naming the request otherwise.
pub fn expect_status(what: &str, response: &Response, status: u16) -> Result<()> {
    if response.status != status {
        bail!(
            "{what} answered HTTP {} (expected {status}): {}",
            response.status,
            snippet(&response.body)
        );
    }
    Ok(())
}
