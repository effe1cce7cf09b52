//! `HeadGuard`: every HTTP/1 request head is checked before actix-http
//! parses it, so that no refusal goes out without the error catalogue's JSON.
//!
//! actix-http answers the heads it cannot take itself, before any
//! application code runs, with an empty body: 400 for a request target over
//! 65,534 bytes (the `http` crate's `Uri` limit) or a malformed head, 431 for
//! a head over its 128 KiB read buffer or with more than 96 header fields,
//! 408 when the first head is slow. None of these limits can be configured.
//!
//! The guard sits between the socket and actix-http's dispatcher (see
//! `http::server`). It holds each head back until the head is complete,
//! holding it to the broker's smaller limits ([`head::MAX_QUERY_BYTES`], ...)
//! while it arrives, then checks it against actix-http's rules. A head that
//! passes is handed on byte for byte. A head it refuses is replaced by a
//! small synthetic request carrying the reason in the
//! [`REFUSAL_HEADER`] with this process's secret [`RefusalMarker`]; the app
//! answers it (`http::fallback`) with the catalogue's JSON and
//! `Connection: close`, in order after any earlier pipelined request, and the
//! rest of the refused input is read and dropped.
//!
//! To know where the next head starts on a kept-alive connection, the guard
//! follows each body's framing (Content-Length or chunked, as actix-http
//! does). A connection it cannot follow (a WebSocket upgrade, CONNECT, a
//! chunked body actix-http will fail) is passed through untouched from then
//! on; actix-http's own limits still bound its memory.
//!
//! A pipelined request (sent before the answer to the one before it) is
//! held back until that answer has begun to be written. actix-http's codec
//! keeps the method, version and connection type of the last request it
//! decoded, and encodes an answer with them: decoding the next request
//! first gave a `HEAD` answer its body (the client then read that body as
//! the next answer's status line) and a `GET` answer none, and let a request
//! behind a `Connection: close` answer run.

mod chunked;
pub mod head;

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::{Buf, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};

use chunked::{ChunkScan, Chunks};
pub use head::Refusal;
use head::{HeadScan, Scan};

/// The header of a synthetic refusal request: `<marker> <reason>`.
pub const REFUSAL_HEADER: &str = "x-sse-broker-refusal";

/// How long a new connection may take to send its first complete head
/// (actix-http's `client_request_timeout` default, which the guard takes
/// over so the 408 is JSON too), and a kept-alive connection each later
/// head, from its first byte: actix-http times only the first, so a client
/// could otherwise trickle a second head a byte a second, for good.
pub const FIRST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read per socket read.
const READ_CHUNK: usize = 8 * 1024;

/// Input after a refused head that is read and dropped, so the kernel does
/// not reset the connection (losing the answer) for unread data; past this
/// the guard stops reading and the client's sending stalls.
const MAX_DRAIN_BYTES: usize = 1024 * 1024;

/// A per-process secret that marks the guard's synthetic requests, so a
/// client cannot make the app answer with a refusal by sending the header.
#[derive(Debug, Clone)]
pub struct RefusalMarker(Arc<str>);

impl RefusalMarker {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string().into())
    }

    fn header_value(&self, refusal: Refusal) -> String {
        format!("{} {}", self.0, refusal.token())
    }

    /// The refusal a synthetic request carries; `None` for anything a
    /// client wrote.
    pub fn read(&self, header_value: &[u8]) -> Option<Refusal> {
        let value = std::str::from_utf8(header_value).ok()?;
        let (marker, token) = value.split_once(' ')?;
        (marker == &*self.0).then(|| Refusal::from_token(token))?
    }
}

/// How the bytes after the ones already checked are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A request head (held until complete).
    Head,
    /// A Content-Length body with this many bytes left.
    Body { remaining: u64 },
    /// A chunked body.
    Chunked(ChunkScan),
    /// Not followed any more: everything goes through.
    PassThrough,
    /// A head was refused: input is dropped.
    Refused,
}

/// An I/O stream whose request heads are checked (see the module docs).
pub struct HeadGuard<IO> {
    io: IO,
    /// Read from the socket, not yet handed on. `buf[..ready]` is checked
    /// (a head that passed, body bytes, or a synthetic request); the rest is
    /// a head still arriving.
    buf: BytesMut,
    ready: usize,
    framing: Framing,
    scan: HeadScan,
    marker: RefusalMarker,
    /// Until the head arriving is complete: the first from the connection's
    /// start, a later one from its first byte.
    head_deadline: Option<Pin<Box<Sleep>>>,
    drained: usize,
    eof: bool,
    /// Something was written since the last head was handed on: the next
    /// head may follow (see the module docs on pipelining).
    answered: bool,
    /// The dispatcher's read, waiting for that write.
    held_read: Option<Waker>,
}

impl<IO> HeadGuard<IO> {
    /// The connection under the guard.
    pub fn inner(&self) -> &IO {
        &self.io
    }

    pub fn new(io: IO, marker: RefusalMarker) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            ready: 0,
            framing: Framing::Head,
            scan: HeadScan::default(),
            marker,
            head_deadline: Some(Box::pin(tokio::time::sleep(FIRST_HEAD_TIMEOUT))),
            drained: 0,
            eof: false,
            answered: true,
            held_read: None,
        }
    }

    /// A pipelined head waits for the answer to the request before it.
    fn holding(&self) -> bool {
        self.framing == Framing::Head && !self.answered && self.ready < self.buf.len()
    }

    /// Bytes went out: an answer has begun, a held head may follow.
    fn wrote(&mut self, written: &Poll<io::Result<usize>>) {
        if !self.answered && matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.answered = true;
            self.advance();
            if let Some(read) = self.held_read.take() {
                read.wake();
            }
        }
    }

    /// Moves checked bytes to `ready`, as far as the framing allows.
    fn advance(&mut self) {
        while self.ready < self.buf.len() && self.framing != Framing::Refused {
            let pending = &self.buf[self.ready..];
            match &mut self.framing {
                Framing::Head if !self.answered => return,
                Framing::Head => {
                    let verdict = match self.scan.feed(pending) {
                        Scan::Incomplete => {
                            if self.head_deadline.is_none() {
                                self.head_deadline =
                                    Some(Box::pin(tokio::time::sleep(FIRST_HEAD_TIMEOUT)));
                            }
                            return;
                        }
                        Scan::Complete(len) => head::check(&pending[..len]).map(|next| (len, next)),
                        Scan::Refused(refusal) => Err(refusal),
                    };
                    match verdict {
                        Ok((len, next)) => {
                            self.ready += len;
                            self.answered = false;
                            self.framing = next;
                            self.scan = HeadScan::default();
                            self.head_deadline = None;
                        }
                        Err(refusal) => self.refuse(refusal),
                    }
                }
                Framing::Body { remaining } => {
                    let take = (*remaining).min(pending.len() as u64);
                    *remaining -= take;
                    self.ready += take as usize;
                    if *remaining == 0 {
                        self.framing = Framing::Head;
                    }
                }
                Framing::Chunked(chunks) => match chunks.feed(pending) {
                    Chunks::More => self.ready = self.buf.len(),
                    Chunks::Done(len) => {
                        self.ready += len;
                        self.framing = Framing::Head;
                    }
                    Chunks::Broken => self.framing = Framing::PassThrough,
                },
                Framing::PassThrough => self.ready = self.buf.len(),
                Framing::Refused => {}
            }
        }
    }

    /// Replaces the held head with a synthetic request carrying `refusal`.
    fn refuse(&mut self, refusal: Refusal) {
        tracing::debug!(reason = refusal.token(), "request head refused");
        let (method, path) = head::method_and_path(&self.buf[self.ready..]);
        let request = format!(
            "{method} {} HTTP/1.1\r\nhost: sse-broker\r\nconnection: close\r\n{REFUSAL_HEADER}: {}\r\n\r\n",
            path.unwrap_or("/"),
            self.marker.header_value(refusal),
        );
        self.buf.truncate(self.ready);
        self.buf.extend_from_slice(request.as_bytes());
        self.ready = self.buf.len();
        self.framing = Framing::Refused;
        self.head_deadline = None;
    }
}

impl<IO: AsyncRead + Unpin> HeadGuard<IO> {
    /// Reads one chunk from the socket into `buf`. The dispatcher polls a
    /// read on every wake-up of the connection (for a stream: every event
    /// it is sent), nearly always with nothing to read, so the chunk lands
    /// on the stack first: a read that finds nothing costs no zeroing and
    /// no allocation.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut scratch = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut chunk = ReadBuf::uninit(&mut scratch);
        let polled = Pin::new(&mut self.io).poll_read(cx, &mut chunk);
        let read = chunk.filled();
        self.buf.extend_from_slice(read);
        polled.map_ok(|()| read.len())
    }

    /// After a refusal: reads and drops input, never reporting its end (on
    /// a read EOF the dispatcher would drop the connection before the
    /// refusal is written).
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut scratch = [0_u8; 4096];
        while self.drained < MAX_DRAIN_BYTES {
            let mut chunk = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(())) if chunk.filled().is_empty() => return Poll::Pending,
                Poll::Ready(Ok(())) => self.drained += chunk.filled().len(),
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Pending
    }

    /// A head is late: refuse it (408), or close a connection that never
    /// sent a byte (a browser's preconnect) without an answer.
    fn head_late(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = &mut self.head_deadline else {
            return false;
        };
        if deadline.as_mut().poll(cx).is_pending() {
            return false;
        }
        if self.buf.is_empty() {
            self.head_deadline = None;
            self.eof = true;
        } else {
            self.refuse(Refusal::HeadTimeout);
        }
        true
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for HeadGuard<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 && out.remaining() > 0 {
                let handed = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..handed]);
                this.buf.advance(handed);
                this.ready -= handed;
                if this.buf.is_empty() {
                    // An open stream sends nothing more for hours: its
                    // connection keeps no read buffer meanwhile.
                    this.buf = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
            if this.framing == Framing::Refused {
                return this.drain(cx);
            }
            if this.holding() {
                this.held_read = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if this.eof && !this.answered && this.framing == Framing::Head {
                // The client sent its whole request and closed its sending
                // side (`nc -N`, a socket's `shutdown(SHUT_WR)`): the end
                // of its input waits for the answer to begin, or the
                // dispatcher would drop the connection with the answer
                // unsent (a publish stored, its id never told).
                this.held_read = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if this.eof || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            match this.fill(cx) {
                Poll::Ready(Ok(0)) => {
                    // The client left; an unfinished head goes with it.
                    this.eof = true;
                    this.buf.clear();
                }
                Poll::Ready(Ok(_)) => this.advance(),
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending if this.head_late(cx) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadGuard<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, bytes);
        self.wrote(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.framing == Framing::Refused {
            // Unread input at close makes the kernel send a reset, which
            // can destroy the refusal before the client reads it.
            let _ = self.drain(cx);
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// What the dispatcher would read when a client sends `input` and
    /// closes its sending side, answering (a byte) after each read.
    async fn through_guard(input: Vec<u8>) -> (Vec<u8>, RefusalMarker) {
        let marker = RefusalMarker::generate();
        let (client, server) = tokio::io::duplex(1 << 20);
        let (_answers, mut requests) = tokio::io::split(client);
        let mut guard = HeadGuard::new(server, marker.clone());
        requests.write_all(&input).await.unwrap();
        requests.shutdown().await.unwrap();
        let mut seen = Vec::new();
        let mut chunk = [0_u8; 1000];
        loop {
            let read =
                tokio::time::timeout(Duration::from_millis(200), guard.read(&mut chunk)).await;
            match read {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
                Ok(Err(error)) => panic!("{error}"),
            }
            guard.write_all(b"x").await.unwrap();
        }
        (seen, marker)
    }

    /// A guard over a connection whose client sent `request` and closed
    /// its sending side; beside it, the client's reading side, kept open.
    async fn half_closed(
        request: &[u8],
    ) -> (
        HeadGuard<tokio::io::DuplexStream>,
        tokio::io::ReadHalf<tokio::io::DuplexStream>,
    ) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (answers, mut requests) = tokio::io::split(client);
        requests.write_all(request).await.unwrap();
        requests.shutdown().await.unwrap();
        (HeadGuard::new(server, RefusalMarker::generate()), answers)
    }

    #[tokio::test]
    async fn a_half_closed_request_sees_its_end_once_its_answer_begins() {
        let request = b"POST /sse/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
        let (mut guard, _answers) = half_closed(request).await;
        let mut seen = Vec::new();
        let mut chunk = [0_u8; 1000];
        while seen.len() < request.len() {
            let n = guard.read(&mut chunk).await.unwrap();
            seen.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(seen, request);

        let before_answer =
            tokio::time::timeout(Duration::from_millis(100), guard.read(&mut chunk)).await;
        assert!(before_answer.is_err(), "the end is held: {before_answer:?}");
        guard.write_all(b"HTTP/1.1 202 Accepted\r\n").await.unwrap();
        let after_answer = tokio::time::timeout(Duration::from_millis(100), guard.read(&mut chunk))
            .await
            .expect("the end, once the answer began");
        assert_eq!(after_answer.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_body_cut_short_by_the_close_ends_at_once() {
        let request = b"POST /sse/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}";
        let (mut guard, _answers) = half_closed(request).await;
        let mut seen = Vec::new();
        let mut chunk = [0_u8; 1000];
        loop {
            let n = tokio::time::timeout(Duration::from_millis(100), guard.read(&mut chunk))
                .await
                .expect("never held: the body will not come")
                .unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(seen, request);
    }

    #[tokio::test]
    async fn a_pipelined_request_waits_until_the_answer_before_it_begins() {
        let first = b"HEAD /sse/stats HTTP/1.1\r\nHost: x\r\n\r\n";
        let second = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        let (client, server) = tokio::io::duplex(1 << 16);
        let (_answers, mut requests) = tokio::io::split(client);
        let mut guard = HeadGuard::new(server, RefusalMarker::generate());
        requests
            .write_all(&[&first[..], second].concat())
            .await
            .unwrap();
        let mut chunk = [0_u8; 1000];

        let n = guard.read(&mut chunk).await.unwrap();
        assert_eq!(&chunk[..n], first);
        let early = tokio::time::timeout(Duration::from_millis(100), guard.read(&mut chunk)).await;
        assert!(early.is_err(), "handed on before the first answer began");

        guard.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(1), guard.read(&mut chunk))
            .await
            .expect("handed on once the answer began")
            .unwrap();
        assert_eq!(&chunk[..n], second);
    }

    #[tokio::test]
    async fn requests_that_pass_are_handed_on_byte_for_byte() {
        let input = [
            &b"POST /sse/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n"[..],
            b"{\"a\":\"\r\n\r\n\"}",
            b"POST /sse/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"4\r\n\r\n\r\n\r\n0\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        .concat();
        let (seen, _) = through_guard(input.clone()).await;
        assert_eq!(seen, input);
    }

    #[tokio::test]
    async fn an_oversized_head_becomes_a_marked_request_after_the_ones_before_it() {
        let first = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let mut input = first.clone();
        input.extend(b"GET /sse/history?x=");
        input.extend(std::iter::repeat_n(b'a', 100_000));
        input.extend(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        let (seen, marker) = through_guard(input).await;
        let (before, refusal) = seen.split_at(first.len());
        assert_eq!(before, first);
        let refusal = String::from_utf8(refusal.to_vec()).unwrap();
        assert!(
            refusal.starts_with("GET /sse/history HTTP/1.1\r\n"),
            "{refusal}"
        );
        assert!(refusal.contains("connection: close\r\n"), "{refusal}");
        let value = refusal
            .lines()
            .find_map(|line| line.strip_prefix("x-sse-broker-refusal: "))
            .expect("the refusal header");
        assert_eq!(marker.read(value.as_bytes()), Some(Refusal::QueryTooLong));
        assert!(refusal.ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_refusal_header_from_a_client_is_not_trusted() {
        let marker = RefusalMarker::generate();
        assert_eq!(marker.read(b"guess headers_too_large"), None);
        assert_eq!(marker.read(b"headers_too_large"), None);
        let other = RefusalMarker::generate();
        assert_eq!(
            marker.read(other.header_value(Refusal::QueryTooLong).as_bytes()),
            None
        );
    }
}
