//! `StreamBody`: the `text/event-stream` response body of one stream, and
//! [`StreamParts`], the halves a new stream is made of.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use actix_web::body::{BodySize, MessageBody};
use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};

use super::{CloseReason, ConnectionStats, OutboundFrame};
use crate::domain::{EventId, now_ms};

/// A burst of queued frames is joined into chunks of about this size: big
/// enough to save per-chunk work, small enough for actix's write buffer.
const MAX_CHUNK_BYTES: usize = 16 * 1024;

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
    delivery_lag: prometheus::Histogram,
}

#[derive(Debug, thiserror::Error)]
#[error("stream closed by the broker: {}", .0.as_str())]
pub struct StreamAborted(CloseReason);

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
        let first = match self.queue.poll_recv(cx) {
            Poll::Ready(Some(frame)) => frame,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let now = now_ms();
        self.stats.record_write(&first, &self.delivery_lag, now);
        let Ok(second) = self.queue.try_recv() else {
            return Poll::Ready(Some(Ok(first.bytes.clone())));
        };
        // Everything already queued leaves as one chunk: one chunk header
        // and one pass through actix's encoder for a burst, not one each.
        let mut chunk = BytesMut::with_capacity(first.bytes.len() + second.bytes.len());
        chunk.extend_from_slice(&first.bytes);
        let mut next = Some(second);
        while let Some(frame) = next.take() {
            self.stats.record_write(&frame, &self.delivery_lag, now);
            chunk.extend_from_slice(&frame.bytes);
            if chunk.len() < MAX_CHUNK_BYTES {
                next = self.queue.try_recv().ok();
            }
        }
        Poll::Ready(Some(Ok(chunk.freeze())))
    }
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
    pub fn new(
        capacity: usize,
        resume_after: Option<EventId>,
        delivery_lag: prometheus::Histogram,
    ) -> Self {
        let (queue, receiver) = mpsc::channel(capacity);
        let (abort, abort_receiver) = oneshot::channel();
        let stats = Arc::new(ConnectionStats::new(resume_after));
        Self {
            body: StreamBody {
                queue: receiver,
                abort: Some(abort_receiver),
                stats: stats.clone(),
                delivery_lag,
            },
            queue,
            abort,
            stats,
        }
    }
}
