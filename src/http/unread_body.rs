//! An answer given before a chunked request body has ended (a cancel in the
//! middle of an upload, a 422 naming a bad line, a 413 at the size limit)
//! closes the connection after a short linger, as one given before a
//! `Content-Length` body has ended already does.
//!
//! When the handler has dropped the body's reader, actix-http keeps such a
//! connection open to drain the rest of a chunked body so that it can be
//! kept alive, with no deadline: a producer that goes silent after its
//! refusal would hold its socket (and a slot under `--max-connections`)
//! for ever. While the reader is still alive when the answer's last byte is
//! written, actix-http instead reads and drops what arrives within the
//! disconnect timeout and then closes the connection (with
//! `Connection: close` on the answer). So for a chunked request the body's
//! reader is shared with the answer's body until that body is written.

use std::{
    cell::RefCell,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use actix_web::{
    Error, HttpMessage,
    body::{BodySize, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    error::PayloadError,
    middleware::Next,
    web::Bytes,
};
use futures_util::Stream;

/// The request body's reader, shared by the handler and the answer.
type SharedReader = Rc<RefCell<Payload>>;

/// See the module docs.
pub async fn close_after_early_answer<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<HeldUntilSent<B>>, Error> {
    let held = req.head().chunked().then(|| {
        let reader: SharedReader = Rc::new(RefCell::new(req.take_payload()));
        req.set_payload(Payload::Stream {
            payload: Box::pin(SharedBody(reader.clone())),
        });
        reader
    });
    let response = next.call(req).await?;
    Ok(response.map_body(|_, body| HeldUntilSent { body, held }))
}

/// The handler's side of a shared reader.
struct SharedBody(SharedReader);

impl Stream for SharedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}

pin_project_lite::pin_project! {
    /// An answer's body that keeps the request body's reader until the
    /// answer has been written (it is dropped with the body).
    pub struct HeldUntilSent<B> {
        #[pin]
        body: B,
        held: Option<SharedReader>,
    }
}

impl<B: MessageBody> MessageBody for HeldUntilSent<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        // As bytes, the body would no longer hold the reader.
        if self.held.is_some() {
            return Err(self);
        }
        self.body
            .try_into_bytes()
            .map_err(|body| Self { body, held: None })
    }
}
