//! actix-http logs every response body that ends in an error at ERROR
//! ("Response payload stream error: …"). A stream the broker closes on
//! purpose (slow, stale, token expired, store unavailable) ends exactly
//! that way, so the connection is dropped at once instead of waiting on a
//! client that stopped reading; the broker logs each such close itself
//! ("stream closed", with its reason). actix-http's line for it would put
//! a routine close into every error-log alert, so this layer drops those
//! lines, and only those: any other body error still logs.

use std::fmt;

use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::layer::{Context, Layer};

use crate::stream::StreamAborted;

/// Drops actix-http's ERROR line for a stream body the broker aborted.
pub struct DeliberateCloses;

impl<S: Subscriber> Layer<S> for DeliberateCloses {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let metadata = event.metadata();
        if *metadata.level() != Level::ERROR || !metadata.target().starts_with("actix_http::") {
            return true;
        }
        let mut message = AbortedBody(false);
        event.record(&mut message);
        !message.0
    }
}

/// Whether an event's message reports a body that [`StreamAborted`] ended.
struct AbortedBody(bool);

impl Visit for AbortedBody {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let message = format!("{value:?}");
            self.0 = message
                .strip_prefix(BODY_ERROR)
                .is_some_and(|error| error.starts_with(StreamAborted::DEBUG_NAME));
        }
    }
}

/// How actix-http's dispatchers (HTTP/1 and HTTP/2) begin the line.
const BODY_ERROR: &str = "Response payload stream error: ";

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::stream::CloseReason;

    /// Records the messages of the events that got through.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Kept {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            struct Message(String);
            impl Visit for Message {
                fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                    if field.name() == "message" {
                        self.0 = format!("{value:?}");
                    }
                }
            }
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push(message.0);
        }
    }

    #[test]
    fn only_actix_https_line_for_a_stream_the_broker_aborted_is_dropped() {
        let kept = Kept::default();
        let subscriber = tracing_subscriber::registry()
            .with(DeliberateCloses)
            .with(kept.clone());
        let aborted = StreamAborted::from(CloseReason::Slow);
        let other = std::io::Error::other("connection reset");
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "actix_http::h1::dispatcher", "Response payload stream error: {aborted:?}");
            tracing::error!(target: "actix_http::h1::dispatcher", "Response payload stream error: {other:?}");
            tracing::error!(target: "sse_broker", "Response payload stream error: {aborted:?}");
            tracing::warn!(target: "actix_http::h2::dispatcher", "Response payload stream error: {aborted:?}");
        });
        let kept = kept.0.lock().unwrap().clone();
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(kept[0].contains("connection reset"), "{kept:?}");
        assert!(
            kept[1..].iter().all(|m| m.contains("StreamAborted(Slow)")),
            "{kept:?}"
        );
    }
}
