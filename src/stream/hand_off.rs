//! The resume hand-off: how a stream that reconnects with `Last-Event-ID`
//! gets every stored event it missed, then live ones, with no gap and no
//! duplicate, while publishers keep publishing.
//!
//! 1. **Register first.** The stream is registered before anything is read
//!    from the store, in [`Delivery::Replaying`]: from that moment every
//!    live event that matches it is kept in a bounded buffer beside the
//!    stream instead of its queue.
//! 2. **Replay second.** The [`ReplayJob`](super::replay::ReplayJob) reads
//!    what came after the resume point (from the recently routed frames
//!    kept in memory when they reach back that far, else from the store,
//!    page by page) and pushes each matching event into the stream's queue,
//!    awaiting room (only this stream waits for its own client).
//! 3. **De-duplicate by id.** When nothing more is there, the job sends
//!    [`ReplayCaughtUp`] with the last id it read. The Registry answers it
//!    with [`Delivery::caught_up`]: buffered frames at or below that id were
//!    replayed already and are dropped; the rest go into the queue, and the
//!    stream is [`Delivery::Live`], remembering `replayed_through` so that a
//!    late live copy of a replayed event (the Persister commits before it
//!    routes, so a replay can read an event whose route arrives after the
//!    hand-off) is skipped too.
//! 4. **Overflow is not loss.** When the buffer fills up (a long replay under
//!    heavy publishing) or the buffered frames do not fit the queue, the
//!    answer is [`HandOff::Overflowed`] with the last id actually queued:
//!    everything after it is in the store, so the job reads on from there
//!    and hands off again.
//!
//! Ids are delivered in increasing order on every stream, which is what
//! makes the last id a client saw a safe resume point.

use std::collections::VecDeque;

use actix::Message;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::{ConnectionId, OutboundFrame};
use crate::domain::EventId;

/// How a registered stream receives live events right now.
#[derive(Debug)]
pub enum Delivery {
    Live {
        /// Every stored event up to this id is already in the queue
        /// (replayed from the store): a late live copy is skipped.
        replayed_through: Option<EventId>,
    },
    /// Resuming: live frames wait here until the replay has caught up.
    Replaying {
        buffer: VecDeque<OutboundFrame>,
        overflowed: bool,
    },
}

/// What became of one live frame offered to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// In the stream's queue.
    Queued,
    /// Kept for the hand-off, or dropped after an overflow (the replay
    /// reads it from the store), or already replayed.
    Held,
    /// The queue is full: the client reads too slowly.
    Full,
    /// The stream's body is gone.
    Closed,
}

/// The Registry's answer when a resuming stream's replay caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOff {
    /// Buffered events after the replay were queued; the stream is live.
    /// `task_ended`: one of them was its task's last event.
    Live { task_ended: bool },
    /// The buffer overflowed or did not fit the queue: replay again from
    /// the store after `queued_through`, the last id already queued.
    Overflowed { queued_through: EventId },
    /// The stream is no longer registered.
    Gone,
}

/// A resuming stream has replayed everything up to `last_replayed`.
#[derive(Debug, Message)]
#[rtype(result = "HandOff")]
pub struct ReplayCaughtUp {
    pub id: ConnectionId,
    pub last_replayed: EventId,
}

/// Drops the held frames the store can give again (those with an id).
fn drop_stored(buffer: &mut VecDeque<OutboundFrame>) {
    buffer.retain(|frame| frame.event_id.is_none());
}

impl Delivery {
    pub fn new(resuming: bool) -> Self {
        if resuming {
            Self::Replaying {
                buffer: VecDeque::new(),
                overflowed: false,
            }
        } else {
            Self::Live {
                replayed_through: None,
            }
        }
    }

    pub fn is_replaying(&self) -> bool {
        matches!(self, Self::Replaying { .. })
    }

    /// A live frame for this stream: queued when live, held while
    /// replaying. The hand-off buffer holds at most `buffer_capacity`
    /// frames; past that it is dropped whole and the replay reads on.
    pub fn offer(
        &mut self,
        frame: &OutboundFrame,
        queue: &mpsc::Sender<OutboundFrame>,
        buffer_capacity: usize,
    ) -> Offered {
        match self {
            Self::Live { replayed_through } => {
                if frame.event_id.is_some() && frame.event_id <= *replayed_through {
                    return Offered::Held;
                }
                match queue.try_send(frame.clone()) {
                    Ok(()) => Offered::Queued,
                    Err(TrySendError::Full(_)) => Offered::Full,
                    Err(TrySendError::Closed(_)) => Offered::Closed,
                }
            }
            Self::Replaying { buffer, overflowed } => {
                if buffer.len() >= buffer_capacity && !*overflowed {
                    drop_stored(buffer);
                    *overflowed = true;
                }
                // Past an overflow the store has what carries an id; a frame
                // without one (`subscription_updated`, a live-only event)
                // exists nowhere else, so it is still held.
                if buffer.len() < buffer_capacity && (!*overflowed || frame.event_id.is_none()) {
                    buffer.push_back(frame.clone());
                }
                Offered::Held
            }
        }
    }

    /// Step 3 of the hand-off (see the module doc).
    pub fn caught_up(
        &mut self,
        last_replayed: EventId,
        queue: &mpsc::Sender<OutboundFrame>,
    ) -> HandOff {
        let Self::Replaying { buffer, overflowed } = self else {
            return HandOff::Live { task_ended: false };
        };
        let mut queued_through = last_replayed;
        if *overflowed {
            *overflowed = false;
            // The frames without an id go out now; the rest is re-read.
            while let Some(frame) = buffer.pop_front() {
                match queue.try_send(frame) {
                    Ok(()) => {}
                    Err(TrySendError::Full(frame)) => {
                        buffer.push_front(frame);
                        break;
                    }
                    Err(TrySendError::Closed(_)) => return HandOff::Gone,
                }
            }
            return HandOff::Overflowed { queued_through };
        }
        buffer.retain(|f| f.event_id.is_none_or(|id| id > last_replayed));
        let mut task_ended = false;
        while let Some(frame) = buffer.pop_front() {
            let id = frame.event_id;
            let ends_task = frame.ends_task;
            match queue.try_send(frame) {
                Ok(()) => {
                    queued_through = id.unwrap_or(queued_through);
                    task_ended |= ends_task;
                }
                // The replay filled the queue: the rest is in the store,
                // but for the frames without an id, kept for the next round.
                Err(TrySendError::Full(frame)) => {
                    buffer.push_front(frame);
                    drop_stored(buffer);
                    return HandOff::Overflowed { queued_through };
                }
                Err(TrySendError::Closed(_)) => return HandOff::Gone,
            }
        }
        *self = Self::Live {
            replayed_through: Some(queued_through),
        };
        HandOff::Live { task_ended }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frame(id: i64) -> OutboundFrame {
        frame_ending(id, false)
    }

    fn frame_ending(id: i64, ends_task: bool) -> OutboundFrame {
        super::super::frame::Frame {
            bytes: Bytes::from(format!("id: {id}\n\n")),
            event_id: Some(EventId(id)),
            ends_task,
            published_at_ms: 0,
            replay_share: None,
        }
        .into()
    }

    fn drain(queue: &mut mpsc::Receiver<OutboundFrame>) -> Vec<i64> {
        let mut ids = Vec::new();
        while let Ok(frame) = queue.try_recv() {
            ids.extend(frame.event_id.map(|id| id.0));
        }
        ids
    }

    #[test]
    fn live_events_during_a_replay_are_held_then_queued_without_the_replayed_ones() {
        let (sender, mut queue) = mpsc::channel(16);
        let mut delivery = Delivery::new(true);
        for id in [4, 5, 6] {
            assert_eq!(delivery.offer(&frame(id), &sender, 8), Offered::Held);
        }
        assert!(
            drain(&mut queue).is_empty(),
            "nothing is queued while replaying"
        );

        // The replay read the store up to 5: 4 and 5 are not sent twice.
        let answer = delivery.caught_up(EventId(5), &sender);

        assert_eq!(answer, HandOff::Live { task_ended: false });
        assert_eq!(drain(&mut queue), [6]);
        // A late live copy of a replayed event is skipped; newer ones flow.
        assert_eq!(delivery.offer(&frame(5), &sender, 8), Offered::Held);
        assert_eq!(delivery.offer(&frame(6), &sender, 8), Offered::Held);
        assert_eq!(delivery.offer(&frame(7), &sender, 8), Offered::Queued);
        assert_eq!(drain(&mut queue), [7]);
    }

    #[test]
    fn an_overflowing_buffer_sends_the_replay_back_to_the_store() {
        let (sender, mut queue) = mpsc::channel(16);
        let mut delivery = Delivery::new(true);
        for id in 1..=4 {
            delivery.offer(&frame(id), &sender, 3);
        }

        let answer = delivery.caught_up(EventId(0), &sender);

        assert_eq!(
            answer,
            HandOff::Overflowed {
                queued_through: EventId(0)
            }
        );
        assert!(drain(&mut queue).is_empty());
        assert!(delivery.is_replaying(), "the stream keeps buffering");
        // The second round catches up with what arrived since.
        delivery.offer(&frame(5), &sender, 3);
        assert_eq!(
            delivery.caught_up(EventId(4), &sender),
            HandOff::Live { task_ended: false }
        );
        assert_eq!(drain(&mut queue), [5]);
    }

    #[test]
    fn a_frame_without_an_id_survives_an_overflow() {
        // A `subscription_updated` is in no store: the overflow that sends
        // the replay back to the store must not lose it.
        let (sender, mut queue) = mpsc::channel(16);
        let mut delivery = Delivery::new(true);
        let update = OutboundFrame::control(bytes::Bytes::from_static(
            b"event: subscription_updated\ndata: {}\n\n",
        ));
        delivery.offer(&frame(1), &sender, 3);
        delivery.offer(&update, &sender, 3);
        for id in 2..=4 {
            delivery.offer(&frame(id), &sender, 3);
        }

        let answer = delivery.caught_up(EventId(0), &sender);

        assert_eq!(
            answer,
            HandOff::Overflowed {
                queued_through: EventId(0)
            }
        );
        let queued = queue.try_recv().expect("the update is queued");
        assert_eq!(queued.bytes, update.bytes);
        assert!(queue.try_recv().is_err(), "the stored frames are re-read");
    }

    #[test]
    fn held_frames_that_do_not_fit_the_queue_are_read_from_the_store_after_the_last_queued() {
        let (sender, mut queue) = mpsc::channel(2);
        let mut delivery = Delivery::new(true);
        for id in [3, 4, 5] {
            delivery.offer(&frame(id), &sender, 8);
        }

        let answer = delivery.caught_up(EventId(2), &sender);

        assert_eq!(
            answer,
            HandOff::Overflowed {
                queued_through: EventId(4)
            }
        );
        assert_eq!(drain(&mut queue), [3, 4]);
    }

    #[test]
    fn a_task_end_among_the_held_frames_is_reported() {
        let (sender, _queue) = mpsc::channel(8);
        let mut delivery = Delivery::new(true);
        let last = frame_ending(9, true);
        delivery.offer(&last, &sender, 8);
        assert_eq!(
            delivery.caught_up(EventId(8), &sender),
            HandOff::Live { task_ended: true }
        );
    }

    #[test]
    fn a_stream_whose_body_is_gone_is_gone() {
        let (sender, queue) = mpsc::channel(8);
        let mut delivery = Delivery::new(true);
        delivery.offer(&frame(1), &sender, 8);
        drop(queue);
        assert_eq!(delivery.caught_up(EventId(0), &sender), HandOff::Gone);
        let mut live = Delivery::new(false);
        assert_eq!(live.offer(&frame(2), &sender, 8), Offered::Closed);
    }
}
