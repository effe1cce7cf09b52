//! Response bodies: fixed length, chunked, or until the broker closes.

use anyhow::{Context, Result, bail};
use bytes::{Buf, BytesMut};

use super::snippet;

/// A chunk-size or trailer line longer than this is a framing error.
const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// How a response body is delimited.
#[derive(Debug)]
pub enum BodyFraming {
    Chunked(ChunkedDecoder),
    Length { remaining: u64 },
    UntilClose,
}

impl BodyFraming {
    /// Moves the body bytes available in `input` to `body`; true once the
    /// body is complete.
    pub fn decode(&mut self, input: &mut BytesMut, body: &mut BytesMut) -> Result<bool> {
        match self {
            BodyFraming::Chunked(decoder) => decoder.decode(input, body),
            BodyFraming::Length { remaining } => {
                let take = input
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                body.extend_from_slice(&input[..take]);
                input.advance(take);
                *remaining -= take as u64;
                Ok(*remaining == 0)
            }
            BodyFraming::UntilClose => {
                body.extend_from_slice(input);
                input.clear();
                Ok(false)
            }
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting `<hex size>[;extensions]\r\n`.
    #[default]
    Size,
    Data {
        remaining: u64,
    },
    /// Expecting the `\r\n` after a chunk's data.
    DataEnd,
    /// After the last (zero) chunk: trailer lines up to an empty one.
    Trailer,
    Done,
}

/// Incremental decoder of `Transfer-Encoding: chunked`: input may stop
/// anywhere, even inside a size line or a CRLF.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl ChunkedDecoder {
    /// Consumes what it can of `input`, appending chunk data to `body`;
    /// true once the terminating chunk and trailers have been read.
    pub fn decode(&mut self, input: &mut BytesMut, body: &mut BytesMut) -> Result<bool> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = take_line(input)? else {
                        return Ok(false);
                    };
                    let size = line[..].split(|&b| b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(size)
                        .ok()
                        .and_then(|size| u64::from_str_radix(size.trim(), 16).ok())
                        .with_context(|| {
                            format!("malformed chunk size line {:?}", snippet(&line))
                        })?;
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data { remaining: size }
                    };
                }
                ChunkState::Data { remaining } => {
                    if input.is_empty() {
                        return Ok(false);
                    }
                    let take = input
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    body.extend_from_slice(&input[..take]);
                    input.advance(take);
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data { remaining }
                    };
                }
                ChunkState::DataEnd => {
                    let Some(line) = take_line(input)? else {
                        return Ok(false);
                    };
                    if !line.is_empty() {
                        bail!("a chunk is longer than its declared size");
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let Some(line) = take_line(input)? else {
                        return Ok(false);
                    };
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
                ChunkState::Done => return Ok(true),
            }
        }
    }
}

/// Takes one line off `input`, without its CRLF (or bare LF).
fn take_line(input: &mut BytesMut) -> Result<Option<BytesMut>> {
    match input.iter().position(|&b| b == b'\n') {
        Some(newline) => {
            let mut line = input.split_to(newline + 1);
            line.truncate(newline);
            if line.last() == Some(&b'\r') {
                line.truncate(newline - 1);
            }
            Ok(Some(line))
        }
        None if input.len() > MAX_CHUNK_LINE_BYTES => {
            bail!("a chunked-encoding line is longer than {MAX_CHUNK_LINE_BYTES} bytes")
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` to `step` split at `cut`, the way two reads would.
    fn in_two_reads(input: &[u8], cut: usize, mut step: impl FnMut(&mut BytesMut)) {
        let mut buffer = BytesMut::from(&input[..cut]);
        step(&mut buffer);
        buffer.extend_from_slice(&input[cut..]);
        step(&mut buffer);
    }

    #[test]
    fn chunked_bodies_decode_the_same_wherever_the_reads_split() {
        let wire = b"7\r\nevent: \r\n19;ext=1\r\nconnected\ndata: {\"a\":1}\n\n\r\n0\r\nX-Trailer: y\r\n\r\n";
        let expected = b"event: connected\ndata: {\"a\":1}\n\n";
        for cut in 0..=wire.len() {
            let mut decoder = ChunkedDecoder::default();
            let mut body = BytesMut::new();
            let mut done = false;
            in_two_reads(wire, cut, |input| {
                done = decoder.decode(input, &mut body).unwrap();
            });
            assert!(done, "cut at {cut}");
            assert_eq!(&body[..], &expected[..], "cut at {cut}");
        }
    }

    #[test]
    fn a_chunk_longer_than_its_size_is_an_error() {
        let mut decoder = ChunkedDecoder::default();
        let mut input = BytesMut::from(&b"2\r\nabc\r\n"[..]);
        assert!(decoder.decode(&mut input, &mut BytesMut::new()).is_err());
    }
}
