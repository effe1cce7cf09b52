//! `StreamBody`: the `text/event-stream` response body of one stream, and
//! [`StreamParts`], the halves a new stream is made of.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use actix_web::body::{BodySize, MessageBody};
use bytes::{Bytes, BytesMut};
use tokio::{
    sync::{mpsc, oneshot},
    time::{Instant, Sleep},
};

use super::{CloseReason, ConnectionStats, OutboundFrame};
use crate::{
    domain::{EventId, now_ms},
    telemetry::StreamBodyMetrics,
};

/// A burst of queued frames is joined into chunks of about this size: big
/// enough to save per-chunk work, small enough for actix's write buffer.
const MAX_CHUNK_BYTES: usize = 16 * 1024;
/// A larger frame (a task's rolled-up text: the whole answer) goes to
/// actix in pieces of this size, each taken only once actix's buffer has
/// room: a client that stops reading then stops taking pieces, which the
/// stream's actor sees (`ConnectionStats::stuck_mid_frame_since_ms`) and
/// closes as slow, instead of leaving the whole frame in actix's buffer
/// until the stale check.
pub(super) const FRAME_PIECE_BYTES: usize = 64 * 1024;

/// The `text/event-stream` response body of one stream.
///
/// A frame counts as written when actix takes it, which it does only while
/// its write buffer has room, so a client that stops reading stops "writes".
/// `abort` tears the connection down at once (slow or stale client), without
/// waiting for a stuck socket to drain the queue.
pub struct StreamBody {
    queue: mpsc::Receiver<OutboundFrame>,
    abort: Option<oneshot::Receiver<CloseReason>>,
    stats: Arc<ConnectionStats>,
    metrics: StreamBodyMetrics,
    /// `--write-delay-ms`, when set: see [`WriteDelay`]. Boxed: a stream
    /// without it carries one pointer, not the whole state.
    delay: Option<Box<WriteDelay>>,
    /// What actix has yet to take of a frame larger than a piece.
    rest: Option<Bytes>,
}

/// The opt-in write delay (`--write-delay-ms`): a frame reaching an idle
/// stream waits this long, and whatever joins it meanwhile leaves in the
/// same write: one `send` (and one wake-up of the client) for several
/// events, at the price of that much latency. A backlog already queued
/// behind a write leaves at once, so bursts and replays are never held
/// more than once.
struct WriteDelay {
    delay: Duration,
    /// The frame being held, until `timer` fires.
    held: Option<OutboundFrame>,
    /// Made at the first held frame, then reset: an idle stream pays nothing.
    timer: Option<Pin<Box<Sleep>>>,
    /// The last poll found frames waiting: the next ones go out unheld.
    backlog: bool,
}

impl WriteDelay {
    /// The first frame of the next write, once its delay is over; `None`
    /// once the queue is closed and empty.
    fn poll_first(
        &mut self,
        queue: &mut mpsc::Receiver<OutboundFrame>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<OutboundFrame>> {
        if self.held.is_none() {
            match queue.poll_recv(cx) {
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    self.backlog = false;
                    return Poll::Pending;
                }
                Poll::Ready(Some(frame)) if self.backlog => return Poll::Ready(Some(frame)),
                Poll::Ready(Some(frame)) => {
                    self.held = Some(frame);
                    let until = Instant::now() + self.delay;
                    match &mut self.timer {
                        Some(timer) => timer.as_mut().reset(until),
                        None => self.timer = Some(Box::pin(tokio::time::sleep_until(until))),
                    }
                }
            }
        }
        if let Some(timer) = &mut self.timer {
            ready!(timer.as_mut().poll(cx));
        }
        self.backlog = true;
        Poll::Ready(self.held.take())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("stream closed by the broker: {}", .0.as_str())]
pub struct StreamAborted(CloseReason);

impl StreamAborted {
    /// How its `Debug` begins, which is how actix-http logs the body's end.
    pub const DEBUG_NAME: &'static str = "StreamAborted(";
}

impl From<CloseReason> for StreamAborted {
    fn from(reason: CloseReason) -> Self {
        Self(reason)
    }
}

impl MessageBody for StreamBody {
    type Error = StreamAborted;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        if let Some(abort) = self.abort.as_mut() {
            match Pin::new(abort).poll(cx) {
                Poll::Ready(Ok(reason)) => return Poll::Ready(Some(Err(StreamAborted(reason)))),
                // The actor stopped without aborting: drain what is queued.
                Poll::Ready(Err(_)) => self.abort = None,
                Poll::Pending => {}
            }
        }
        if let Some(rest) = self.rest.take() {
            return Poll::Ready(Some(Ok(self.piece_of(rest))));
        }
        let this = &mut *self;
        let polled = match &mut this.delay {
            Some(delay) => delay.poll_first(&mut this.queue, cx),
            None => this.queue.poll_recv(cx),
        };
        let first = match polled {
            Poll::Ready(Some(frame)) => frame,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let now = now_ms();
        self.stats
            .record_write(&first, &self.metrics.delivery_lag, now);
        if first.bytes.len() > FRAME_PIECE_BYTES {
            self.metrics.frames_per_write.observe(1.0);
            return Poll::Ready(Some(Ok(self.piece_of(first.bytes.clone()))));
        }
        let Ok(second) = self.queue.try_recv() else {
            self.metrics.frames_per_write.observe(1.0);
            return Poll::Ready(Some(Ok(first.bytes.clone())));
        };
        // Everything already queued leaves as one chunk: one chunk header
        // and one pass through actix's encoder for a burst, not one each.
        let mut chunk = BytesMut::with_capacity(first.bytes.len() + second.bytes.len());
        chunk.extend_from_slice(&first.bytes);
        let mut next = Some(second);
        let mut frames = 1u32;
        while let Some(frame) = next.take() {
            self.stats
                .record_write(&frame, &self.metrics.delivery_lag, now);
            chunk.extend_from_slice(&frame.bytes);
            frames += 1;
            if chunk.len() < MAX_CHUNK_BYTES {
                next = self.queue.try_recv().ok();
            }
        }
        self.metrics.frames_per_write.observe(f64::from(frames));
        Poll::Ready(Some(Ok(chunk.freeze())))
    }
}

impl StreamBody {
    fn piece_of(&mut self, bytes: Bytes) -> Bytes {
        next_piece(&self.stats, &mut self.rest, bytes)
    }

    /// The stream's counters (the UI message stream's body pieces its own
    /// large parts with them).
    pub(super) fn stats(&self) -> &ConnectionStats {
        &self.stats
    }
}

/// The next piece of `bytes` (a frame larger than a piece, or what is left
/// of one) for actix, keeping what is left in `rest` for the next poll;
/// marks the stream as in the middle of a frame meanwhile. Ordinary frames
/// do not come here: they touch no mark.
pub(super) fn next_piece(
    stats: &ConnectionStats,
    rest: &mut Option<Bytes>,
    mut bytes: Bytes,
) -> Bytes {
    if bytes.len() <= FRAME_PIECE_BYTES {
        stats.frame_done();
        return bytes;
    }
    let piece = bytes.split_to(FRAME_PIECE_BYTES);
    stats.mid_frame(now_ms());
    *rest = Some(bytes);
    piece
}

/// The halves of a new stream: the body goes into the HTTP response, the
/// rest to the Registry and the stream's actor.
pub struct StreamParts {
    pub body: StreamBody,
    pub queue: mpsc::Sender<OutboundFrame>,
    pub abort: oneshot::Sender<CloseReason>,
    pub stats: Arc<ConnectionStats>,
}

impl StreamParts {
    /// `write_delay`: see [`WriteDelay`] (zero: every frame goes out at once).
    pub fn new(
        capacity: usize,
        resume_after: Option<EventId>,
        metrics: StreamBodyMetrics,
        write_delay: Duration,
    ) -> Self {
        let (queue, receiver) = mpsc::channel(capacity);
        let (abort, abort_receiver) = oneshot::channel();
        let stats = Arc::new(ConnectionStats::new(resume_after));
        Self {
            body: StreamBody {
                queue: receiver,
                abort: Some(abort_receiver),
                stats: stats.clone(),
                metrics,
                delay: (!write_delay.is_zero()).then(|| {
                    Box::new(WriteDelay {
                        delay: write_delay,
                        held: None,
                        timer: None,
                        backlog: false,
                    })
                }),
                rest: None,
            },
            queue,
            abort,
            stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    fn histogram() -> prometheus::Histogram {
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("h", "h"))
            .expect("valid histogram")
    }

    fn parts(delay_ms: u64) -> StreamParts {
        let metrics = StreamBodyMetrics {
            delivery_lag: histogram(),
            frames_per_write: histogram(),
        };
        StreamParts::new(64, None, metrics, Duration::from_millis(delay_ms))
    }

    fn frame(text: &str) -> OutboundFrame {
        OutboundFrame::control(Bytes::from(text.to_owned()))
    }

    /// One poll of the body: what it would hand actix now.
    async fn poll_once(body: &mut StreamBody) -> Poll<Option<Bytes>> {
        poll_fn(|cx| {
            Poll::Ready(
                Pin::new(&mut *body)
                    .poll_next(cx)
                    .map(|next| next.map(|chunk| chunk.expect("not aborted"))),
            )
        })
        .await
    }

    async fn send(parts: &StreamParts, text: &str) {
        parts.queue.send(frame(text)).await.expect("queue open");
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_larger_than_a_piece_goes_out_piece_by_piece_and_alone() {
        let mut parts = parts(0);
        let large: String = (0..200_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        send(&parts, &large).await;
        send(&parts, "after").await;
        let mut taken = Vec::new();
        while taken.iter().map(Bytes::len).sum::<usize>() < large.len() {
            let Poll::Ready(Some(piece)) = poll_once(&mut parts.body).await else {
                panic!("the large frame stopped after {} pieces", taken.len());
            };
            assert!(piece.len() <= FRAME_PIECE_BYTES, "{}", piece.len());
            let whole = taken.iter().map(Bytes::len).sum::<usize>() + piece.len() >= large.len();
            assert_eq!(
                parts.stats.stuck_mid_frame_since_ms().is_some(),
                !whole,
                "marked in the middle of the frame only"
            );
            taken.push(piece);
        }
        assert_eq!(taken.len(), 4);
        assert_eq!(taken.concat(), large.as_bytes());
        assert_eq!(
            poll_once(&mut parts.body).await,
            Poll::Ready(Some("after".into())),
            "the next frame after the whole large one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_delay_a_frame_goes_out_at_once() {
        let mut parts = parts(0);
        send(&parts, "a").await;
        assert_eq!(
            poll_once(&mut parts.body).await,
            Poll::Ready(Some("a".into()))
        );
        assert_eq!(poll_once(&mut parts.body).await, Poll::Pending);
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_reaching_an_idle_stream_waits_and_takes_what_joins_it() {
        let mut parts = parts(50);
        send(&parts, "a").await;
        assert_eq!(poll_once(&mut parts.body).await, Poll::Pending);
        send(&parts, "b").await;
        tokio::time::advance(Duration::from_millis(49)).await;
        assert_eq!(poll_once(&mut parts.body).await, Poll::Pending);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            poll_once(&mut parts.body).await,
            Poll::Ready(Some("ab".into()))
        );
        assert_eq!(poll_once(&mut parts.body).await, Poll::Pending);
        let per_write = &parts.body.metrics.frames_per_write;
        assert_eq!(
            (per_write.get_sample_count(), per_write.get_sample_sum()),
            (1, 2.0)
        );
        // Idle again: the next frame is held anew.
        send(&parts, "c").await;
        assert_eq!(poll_once(&mut parts.body).await, Poll::Pending);
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(
            poll_once(&mut parts.body).await,
            Poll::Ready(Some("c".into()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_behind_a_held_write_is_not_held_again() {
        let mut parts = parts(50);
        let kib = "x".repeat(1024);
        for _ in 0..20 {
            send(&parts, &kib).await;
        }
        assert_eq!(poll_once(&mut parts.body).await, Poll::Pending);
        tokio::time::advance(Duration::from_millis(50)).await;
        let Poll::Ready(Some(first)) = poll_once(&mut parts.body).await else {
            panic!("the held write goes out once its delay is over");
        };
        assert_eq!(first.len(), MAX_CHUNK_BYTES);
        // The rest of the burst, at once: no second delay.
        let Poll::Ready(Some(rest)) = poll_once(&mut parts.body).await else {
            panic!("a backlog is not held");
        };
        assert_eq!(first.len() + rest.len(), 20 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_frame_still_goes_out_when_the_stream_ends() {
        let mut parts = parts(50);
        send(&parts, "last").await;
        assert_eq!(poll_once(&mut parts.body).await, Poll::Pending);
        let StreamParts {
            mut body, queue, ..
        } = parts;
        drop(queue);
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(poll_once(&mut body).await, Poll::Ready(Some("last".into())));
        assert_eq!(poll_once(&mut body).await, Poll::Ready(None));
    }
}
