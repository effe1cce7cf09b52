//! One stream's task: connect, read, and connect again when asked to (or,
//! for resuming streams, when the connection was lost), resuming after the
//! last id seen.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::{Result, bail};
use tokio::{
    sync::{Notify, Semaphore, mpsc, watch},
    time::{Instant, sleep},
};

use super::{
    context::StreamContext,
    log::{Arrival, StreamEnd, StreamLog},
};
use crate::sse::SseStream;

/// A resuming stream's pause after a lost connection or a refused reopen,
/// so that a broker refusing everyone is not hammered in a tight loop.
const RESUME_PAUSE: Duration = Duration::from_millis(250);

/// Connection phase of a stream's first attempt, reported once: how long
/// it took and when it ended, or why it failed.
pub(super) type ConnectReport = Result<(Duration, Instant), String>;

/// How one connection of a stream ended.
enum ConnectionEnd {
    Stopped,
    /// The bench asked for a reconnect.
    Reconnect,
    Lost(StreamEnd),
}

/// One stream: connects (at most `permits` at once, resuming after the
/// log's last id), reports how long its first `connected` frame took, then
/// reads until told to stop. A reconnect request, or with
/// `resume_lost` a lost connection, makes it connect again.
pub(super) async fn run_stream(
    context: Arc<StreamContext>,
    mut log: StreamLog,
    permits: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<ConnectReport>,
    mut stop: watch::Receiver<bool>,
    reconnect: Arc<Notify>,
) -> StreamLog {
    let mut ready = Some(ready);
    log.first_attempt = None;
    loop {
        let attempt = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return finish(log),
            attempt = connect(&context, &permits, &mut log) => attempt,
        };
        let stream = match attempt {
            Ok((stream, took)) => {
                // Counted before the report, so that a run told every
                // stream is open also sees them all open.
                log.connections += 1;
                context.connected_now.fetch_add(1, Ordering::Relaxed);
                if let Some(ready) = ready.take() {
                    // The receiver is gone only when the run has already failed.
                    let _ = ready.send(Ok((took, Instant::now())));
                }
                stream
            }
            Err(message) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(message.clone()));
                }
                if !context.resume_lost {
                    log.end = StreamEnd::Failed(message);
                    return finish(log);
                }
                log.note_loss(format!("connect failed: {message}"));
                if pause_or_stop(&mut stop).await {
                    return finish(log);
                }
                continue;
            }
        };
        let end = read_connection(stream, &mut log, &context, &mut stop, &reconnect).await;
        context.connected_now.fetch_sub(1, Ordering::Relaxed);
        match end {
            ConnectionEnd::Stopped => return finish(log),
            ConnectionEnd::Reconnect => log.reconnects += 1,
            ConnectionEnd::Lost(end) if context.resume_lost => {
                log.note_loss(end.to_string());
                if pause_or_stop(&mut stop).await {
                    return finish(log);
                }
            }
            ConnectionEnd::Lost(end) => {
                log.end = end;
                return finish(log);
            }
        }
    }
}

fn finish(mut log: StreamLog) -> StreamLog {
    log.latency.flush();
    log
}

/// Waits [`RESUME_PAUSE`]; true when told to stop meanwhile.
async fn pause_or_stop(stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stop.wait_for(|stop| *stop) => true,
        () = sleep(RESUME_PAUSE) => false,
    }
}

/// One connect attempt under a permit: the stream past its `connected`
/// frame and how long that took.
async fn connect(
    context: &StreamContext,
    permits: &Semaphore,
    log: &mut StreamLog,
) -> Result<(SseStream, Duration), String> {
    let Ok(_permit) = permits.acquire().await else {
        return Err("the connect limiter closed".to_owned());
    };
    let started = Instant::now();
    log.first_attempt.get_or_insert(started);
    match open_connected_stream(context, log.last_id()).await {
        Ok((stream, starts_after)) => {
            // As an `EventSource` does: a stream that drops before its
            // first event resumes from where its `connected` said it started.
            log.start_after(starts_after);
            Ok((stream, started.elapsed()))
        }
        Err(error) => Err(format!("{error:#}")),
    }
}

async fn read_connection(
    mut stream: SseStream,
    log: &mut StreamLog,
    context: &StreamContext,
    stop: &mut watch::Receiver<bool>,
    reconnect: &Notify,
) -> ConnectionEnd {
    let stopped = stop.wait_for(|stop| *stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            // A dropped sender means the run is over too.
            _ = &mut stopped => return ConnectionEnd::Stopped,
            () = reconnect.notified() => return ConnectionEnd::Reconnect,
            frame = stream.next_event() => {
                let mut frame = match frame {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return ConnectionEnd::Lost(StreamEnd::ClosedByBroker),
                    Err(error) => return failed(&error),
                };
                // The rest of what that read brought, without a select (and
                // a fresh `notified()`) per frame.
                let arrival = Arrival::now();
                loop {
                    log.observe_at(&frame, context, arrival);
                    frame = match stream.next_buffered() {
                        Ok(Some(next)) => next,
                        Ok(None) => break,
                        Err(error) => return failed(&error),
                    };
                }
            }
        }
    }
}

fn failed(error: &anyhow::Error) -> ConnectionEnd {
    ConnectionEnd::Lost(StreamEnd::Failed(format!("{error:#}")))
}

/// Opens a stream (resuming after `last_event_id`) and waits for its first
/// frame, which must be `connected`; answers the id that frame carries (a
/// stream that starts live is told where it starts).
async fn open_connected_stream(
    context: &StreamContext,
    last_event_id: Option<u64>,
) -> Result<(SseStream, Option<u64>)> {
    let mut stream = SseStream::open_after(&context.target, &context.path, last_event_id).await?;
    match stream.next_event().await? {
        Some(frame) if frame.event_type() == "connected" => {
            let starts_after = frame.id.as_deref().and_then(|id| id.parse().ok());
            Ok((stream, starts_after))
        }
        Some(frame) => bail!(
            "the first frame of the stream is `{}`, not `connected`",
            frame.event_type()
        ),
        None => bail!("the broker ended the stream before its `connected` frame"),
    }
}
