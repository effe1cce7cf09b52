//! An upload's body as it arrives: a read takes what has already come
//! with it, so a producer that got ahead is caught up with one write.

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt};

/// Bytes of already-arrived body taken into one write.
const READY_BYTES: usize = 64 * 1024;

/// How much of the body there is after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyState {
    /// More may come.
    Open,
    /// The body ended as it should (the chunked terminator).
    Ended,
    /// The connection broke (or the body could not be read) after what was
    /// gathered: the whole lines in it are applied, then the upload ends.
    Broken,
}

/// `first` and whatever more of the body has already arrived (up to
/// [`READY_BYTES`]), and how the body stands after it. A producer that got
/// ahead while the previous write was being stored (one token per TCP
/// segment, say) is caught up with one write of all it sent meanwhile, not
/// one write per segment.
pub(super) fn with_ready_chunks<S, E>(first: Bytes, body: &mut S) -> (Bytes, BodyState)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut gathered: Option<BytesMut> = None;
    let mut state = BodyState::Open;
    while gathered.as_ref().map_or(first.len(), BytesMut::len) < READY_BYTES {
        match body.next().now_or_never() {
            Some(Some(Ok(more))) => gathered
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&more),
            Some(Some(Err(_))) => {
                state = BodyState::Broken;
                break;
            }
            Some(None) => {
                state = BodyState::Ended;
                break;
            }
            None => break,
        }
    }
    (gathered.map_or(first, BytesMut::freeze), state)
}
