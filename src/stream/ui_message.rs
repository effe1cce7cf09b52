//! `UiMessageBody`: a task stream's body, written as an AI SDK UI message
//! stream.
//!
//! It wraps the task stream's own [`StreamBody`], so the stream has one
//! lifecycle whatever its format: the same Connection, registration,
//! rolled-up catch-up, hand-off (no gap, no duplicate), heartbeats, close
//! reasons and write accounting. Each frame the inner body yields is one
//! SSE event of the broker's (encoded once, shared by every viewer); it is
//! read back here and translated into parts by the domain's
//! [`UiMessageTranslator`], per viewer, since each viewer's parts depend on
//! what that viewer was sent before (`text-start` once).

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use actix_web::body::{BodySize, MessageBody};
use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::{
    CloseReason, StreamAborted, StreamBody,
    body::{FRAME_PIECE_BYTES, next_piece},
};
use crate::domain::{AiSdkMajor, SseParser, UiMessageTranslator};

pub struct UiMessageBody {
    inner: StreamBody,
    /// Reads the inner body's frames back into events; each frame is one
    /// whole event, so nothing is ever left buffered between frames.
    parser: SseParser,
    translator: UiMessageTranslator,
    /// The broker closed the stream before its message ended: once what
    /// came before is written, the response is cut off.
    cut_off: Option<CloseReason>,
    /// What actix has yet to take of a large part (a rolled-up text), given
    /// in pieces as the inner body gives its frames (see `body`).
    rest: Option<Bytes>,
    /// The frames of the earlier tasks of a continued message, rolled up
    /// (see `message_parts`): translated before the inner body's first.
    earlier: Option<Bytes>,
}

impl UiMessageBody {
    /// The UI message stream of the message `message_id` over `inner`,
    /// for a viewer reading with `client`.
    pub fn new(inner: StreamBody, message_id: &str, client: AiSdkMajor) -> Self {
        Self::with_translator(inner, UiMessageTranslator::new(message_id, client), None)
    }

    /// The stream of a task that continues the message `message_id`,
    /// whose earlier parts the tasks of `earlier` wrote (their frames, see
    /// `message_parts`). A reader that rebuilds the message from nothing
    /// (a resuming chat) is sent them first. One that holds them (the chat
    /// that asked for the turn) is not, but the stream knows the calls
    /// they made, so it sends the answers to those calls and to no other.
    /// With no earlier frames (no chat to find them in, or pruned) such a
    /// reader is trusted to hold the calls its answers are for.
    pub fn continuing(
        inner: StreamBody,
        message_id: &str,
        client: AiSdkMajor,
        earlier: Bytes,
        reader: MessageReader,
    ) -> Self {
        let translator = UiMessageTranslator::new(message_id, client);
        match reader {
            MessageReader::Rebuilding => Self::with_translator(inner, translator, Some(earlier)),
            MessageReader::Holding if earlier.is_empty() => {
                Self::with_translator(inner, translator.continuing(), None)
            }
            MessageReader::Holding => {
                let mut body = Self::with_translator(inner, translator, None);
                for event in body.parser.feed(&earlier).unwrap_or_default() {
                    let data = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                    body.translator.hold_earlier(event.event_type(), &data);
                }
                body
            }
        }
    }

    fn with_translator(
        inner: StreamBody,
        translator: UiMessageTranslator,
        earlier: Option<Bytes>,
    ) -> Self {
        Self {
            inner,
            parser: SseParser::new(),
            translator,
            cut_off: None,
            rest: None,
            earlier,
        }
    }

    /// The parts of the message's earlier tasks, once, before anything
    /// else: each of their frames is one whole event.
    fn take_earlier(&mut self) -> Option<Bytes> {
        let frames = self.earlier.take()?;
        let mut out = BytesMut::new();
        for event in self.parser.feed(&frames).unwrap_or_default() {
            let data = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            self.translator
                .translate_earlier(event.event_type(), &data, &mut out);
        }
        Some(out.freeze())
    }
}

impl MessageBody for UiMessageBody {
    type Error = StreamAborted;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        if let Some(rest) = this.rest.take() {
            return Poll::Ready(Some(Ok(next_piece(
                this.inner.stats(),
                &mut this.rest,
                rest,
            ))));
        }
        if let Some(reason) = this.cut_off {
            return Poll::Ready(Some(Err(reason.into())));
        }
        if let Some(earlier) = this.take_earlier().filter(|parts| !parts.is_empty()) {
            let piece = next_piece(this.inner.stats(), &mut this.rest, earlier);
            return Poll::Ready(Some(Ok(piece)));
        }
        loop {
            // After `[DONE]` the inner body is still read to its end, so the
            // stream closes as its task's (`task_finished`), not as a client
            // that went away.
            let frame = match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(frame)) => frame,
                other => return Poll::Ready(other),
            };
            let mut out = BytesMut::new();
            for event in this.parser.feed(&frame).unwrap_or_default() {
                if let Some(reason) = cut_off_by(event.event_type())
                    && !this.translator.is_finished()
                {
                    this.cut_off = Some(reason);
                    break;
                }
                let data = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                this.translator
                    .translate(event.event_type(), &data, &mut out);
            }
            if out.len() > FRAME_PIECE_BYTES {
                let piece = next_piece(this.inner.stats(), &mut this.rest, out.freeze());
                return Poll::Ready(Some(Ok(piece)));
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out.freeze())));
            }
            if let Some(reason) = this.cut_off {
                return Poll::Ready(Some(Err(reason.into())));
            }
        }
    }
}

/// Who reads a continued message's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageReader {
    /// The chat that asked for the turn: it holds the message's earlier
    /// parts (`/tasks/{id}/ui-message-stream`).
    Holding,
    /// A resuming chat: it rebuilds the message from nothing
    /// (`/chats/{chat_id}/stream`).
    Rebuilding,
}

/// The broker's frames that end a stream before its task does. An SSE
/// client reads them and reconnects; the AI SDK has no part for them, and
/// reads a response that simply ends as a message that is complete
/// (`useChat`'s `onFinish` without `isDisconnect`, its status `ready`):
/// an answer cut short by a restart would pass for the whole answer. So
/// the response is cut off instead, without its last chunk, which the SDK
/// reads as the dropped connection it is (status `error`; a reload resumes).
fn cut_off_by(event_type: &str) -> Option<CloseReason> {
    match event_type {
        "shutdown" => Some(CloseReason::Shutdown),
        "token_expired" => Some(CloseReason::TokenExpired),
        _ => None,
    }
}
