//! The OpenTelemetry SDK's own lines once the broker flushes its telemetry
//! on the way out. With a collector that does not answer, the SDK logs its
//! shutdown timing out and, after "bye", each export the runtime's end cut
//! off: two to four ERROR lines per restart, for one outcome the broker
//! reports itself in one warning (`TelemetryGuard::shutdown`). From the
//! flush on, this layer drops the SDK's lines; before it they all log.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Set once the final flush begins.
#[derive(Clone, Default)]
pub struct SdkAfterFlush(Arc<AtomicBool>);

impl SdkAfterFlush {
    pub fn flush_begins(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl<S: Subscriber> Layer<S> for SdkAfterFlush {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        !(self.0.load(Ordering::Relaxed) && event.metadata().target().starts_with("opentelemetry"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Targets(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Targets {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let target = event.metadata().target().to_owned();
            self.0.lock().unwrap().push(target);
        }
    }

    #[test]
    fn the_sdks_lines_are_dropped_from_the_flush_on_and_only_theirs() {
        let layer = SdkAfterFlush::default();
        let kept = Targets::default();
        let subscriber = tracing_subscriber::registry()
            .with(layer.clone())
            .with(kept.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "opentelemetry_sdk", "export failed before the flush");
            layer.flush_begins();
            tracing::error!(target: "opentelemetry_sdk", "BatchSpanProcessor shutdown timing out");
            tracing::error!(target: "opentelemetry_otlp", "dispatch task is gone");
            tracing::warn!(target: "sse_broker", "the collector did not take the last spans");
        });
        assert_eq!(*kept.0.lock().unwrap(), ["opentelemetry_sdk", "sse_broker"]);
    }
}
