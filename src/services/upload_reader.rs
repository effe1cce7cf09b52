//! The body of an upload as the instructions it carries: NDJSON lines, or
//! the data of SSE events (a model provider's or the AI SDK's stream), each
//! named by its line so a refusal can say where. Chunks arrive split
//! anywhere.

use super::{
    generation_input::{Instruction, UploadFormat, ndjson_line},
    provider_events::{Dialect, event_stream_data},
};
use crate::domain::{SseParseError, SseParser};

/// Why the body's next instruction cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("line {line} is longer than {limit} bytes")]
    LineTooLong { line: u64, limit: usize },
    /// An SSE event whose `data` lines, joined, pass the limit (at line
    /// `line`): the event is held whole until its blank line.
    #[error("line {line}: the event's data is longer than {limit} bytes")]
    EventTooLong { line: u64, limit: usize },
}

/// Splits the body into instructions, each named by its line (an SSE
/// event by its last line).
pub(super) enum Reader {
    NdJson {
        pending: Vec<u8>,
        /// The leading bytes of `pending` already searched for a line end:
        /// a long line arriving in many chunks is scanned once, not once
        /// per chunk.
        scanned: usize,
        line: u64,
        max: usize,
    },
    EventStream {
        parser: SseParser,
        max: usize,
        /// Whose stream it is, as its first telling event said.
        dialect: Option<Dialect>,
    },
}

impl Reader {
    pub(super) fn new(format: UploadFormat, max: usize) -> Self {
        match format {
            UploadFormat::NdJson => Self::NdJson {
                pending: Vec::new(),
                scanned: 0,
                line: 0,
                max,
            },
            UploadFormat::EventStream => Self::EventStream {
                parser: SseParser::with_max_line_bytes(max).refusing_invalid_utf8(),
                max,
                dialect: None,
            },
        }
    }

    /// What the body was read as: `ndjson`, the dialect of its events, or
    /// `event_stream` while none of them told.
    pub(super) fn read_as(&self) -> &'static str {
        match self {
            Self::NdJson { .. } => UploadFormat::NdJson.label(),
            Self::EventStream { dialect, .. } => {
                dialect.map_or(UploadFormat::EventStream.label(), Dialect::label)
            }
        }
    }

    /// The instructions of `chunk` (and what earlier chunks left unfinished),
    /// each with its line; `last` reads an unterminated final NDJSON line,
    /// or SSE event, too. The instructions before a malformed line come back with its
    /// error, so they are applied.
    pub(super) fn read(
        &mut self,
        chunk: &[u8],
        last: bool,
    ) -> (Vec<(u64, Instruction)>, Option<ReadError>) {
        let mut out = Vec::new();
        let error = self.read_into(chunk, last, &mut out).err();
        (out, error)
    }

    fn read_into(
        &mut self,
        chunk: &[u8],
        last: bool,
        out: &mut Vec<(u64, Instruction)>,
    ) -> Result<(), ReadError> {
        match self {
            Self::NdJson {
                pending,
                scanned,
                line,
                max,
            } => {
                pending.extend_from_slice(chunk);
                let mut start = 0;
                let mut from = *scanned;
                while let Some(offset) = memchr::memchr(b'\n', &pending[from..]) {
                    let end = from + offset;
                    *line += 1;
                    if end - start > *max {
                        return Err(ReadError::LineTooLong {
                            line: *line,
                            limit: *max,
                        });
                    }
                    out.push((*line, ndjson(&pending[start..end], *line)?));
                    start = end + 1;
                    from = start;
                }
                pending.drain(..start);
                *scanned = pending.len();
                if pending.len() > *max {
                    return Err(ReadError::LineTooLong {
                        line: *line + 1,
                        limit: *max,
                    });
                }
                if last && !pending.is_empty() {
                    *line += 1;
                    out.push((*line, ndjson(pending, *line)?));
                    pending.clear();
                    *scanned = 0;
                }
            }
            Self::EventStream {
                parser,
                max,
                dialect,
            } => {
                parser.push(chunk);
                let mut finished = false;
                loop {
                    let next = match parser.next_event() {
                        Ok(None) if last && !finished => {
                            finished = true;
                            parser.finish()
                        }
                        next => next,
                    };
                    match next {
                        Ok(Some(sse)) => {
                            // Named by its last line: the blank line that
                            // ended it is the one the parser just read
                            // (none at the body's end).
                            let line = parser.lines_read() - u64::from(!finished);
                            let read = event_stream_data(&sse.data)
                                .map_err(|reason| ReadError::Malformed { line, reason })?;
                            *dialect = dialect.or(read.dialect);
                            out.push((line, read.instruction));
                            out.extend(read.then.map(|then| (line, then)));
                        }
                        Ok(None) => break,
                        Err(SseParseError::LineTooLong { .. }) => {
                            return Err(ReadError::LineTooLong {
                                line: parser.lines_read() + 1,
                                limit: *max,
                            });
                        }
                        Err(SseParseError::EventTooLong { .. }) => {
                            return Err(ReadError::EventTooLong {
                                line: parser.lines_read(),
                                limit: *max,
                            });
                        }
                        Err(SseParseError::NotUtf8) => {
                            return Err(ReadError::Malformed {
                                line: parser.lines_read() + 1,
                                reason: NOT_UTF8.into(),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

const NOT_UTF8: &str = "the line is not UTF-8";

fn ndjson(bytes: &[u8], line: u64) -> Result<Instruction, ReadError> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| ReadError::Malformed {
        line,
        reason: NOT_UTF8.into(),
    })?;
    ndjson_line(text).map_err(|reason| ReadError::Malformed { line, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deltas(instructions: &[(u64, Instruction)]) -> Vec<String> {
        instructions
            .iter()
            .map(|(_, i)| match i {
                Instruction::Delta { text, .. } => text.clone(),
                other => panic!("not a delta: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn ndjson_lines_split_anywhere_read_the_same() {
        let body = "{\"delta\": \"a\"}\n{\"delta\": \"bc\"}\r\n{\"delta\": \"d\"}";
        for split in 0..=body.len() {
            let mut reader = Reader::new(UploadFormat::NdJson, 1024);
            let (mut got, error) = reader.read(&body.as_bytes()[..split], false);
            assert!(error.is_none(), "{error:?}");
            let (rest, error) = reader.read(&body.as_bytes()[split..], true);
            assert!(error.is_none(), "{error:?}");
            got.extend(rest);
            assert_eq!(deltas(&got), ["a", "bc", "d"], "split at {split}");
        }
    }

    #[test]
    fn a_long_ndjson_line_in_many_chunks_is_read_whole_and_the_limit_holds() {
        let text = "x".repeat(10_000);
        let body = format!("{{\"delta\": \"{text}\"}}\n{{\"delta\": \"y\"}}\n");
        let mut reader = Reader::new(UploadFormat::NdJson, 10_020);
        let mut got = Vec::new();
        for chunk in body.as_bytes().chunks(97) {
            let (instructions, error) = reader.read(chunk, false);
            assert!(error.is_none(), "{error:?}");
            got.extend(instructions);
        }
        assert_eq!(deltas(&got), [text, "y".to_owned()]);

        let mut reader = Reader::new(UploadFormat::NdJson, 1000);
        let refused = (0..20).find_map(|_| reader.read(&[b'x'; 97], false).1);
        assert!(
            matches!(
                refused,
                Some(ReadError::LineTooLong {
                    line: 1,
                    limit: 1000
                })
            ),
            "{refused:?}"
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_is_refused_by_number_in_either_format() {
        let ndjson = b"{\"delta\": \"a\"}\n{\"delta\": \"\xFF\"}\n";
        let sse = b"data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"a\"}\n\n\
                    data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"\xFF\"}\n\n";
        for (format, body, line) in [
            (UploadFormat::NdJson, &ndjson[..], 2),
            (UploadFormat::EventStream, &sse[..], 3),
        ] {
            let (instructions, error) = Reader::new(format, 1000).read(body, true);
            assert_eq!(deltas(&instructions), ["a"], "{format:?}");
            match error {
                Some(ReadError::Malformed { line: at, reason }) => {
                    assert_eq!((at, reason.as_str()), (line, NOT_UTF8), "{format:?}")
                }
                other => panic!("{format:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_event_stream_that_ends_without_its_blank_line_still_gives_its_last_event() {
        for body in [
            &b"data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"a\"}\n\ndata: [DONE]\n"[..],
            &b"data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"a\"}\n\ndata: [DONE]"[..],
        ] {
            let mut reader = Reader::new(UploadFormat::EventStream, 1000);
            // Not yet: more of the body may follow.
            let (early, error) = reader.read(body, false);
            assert!(error.is_none(), "{error:?}");
            assert_eq!(deltas(&early), ["a"]);
            assert_eq!(early.len(), 1, "{early:?}");
            // The body's end ends the event.
            let (rest, error) = reader.read(b"", true);
            assert!(error.is_none(), "{error:?}");
            assert_eq!(rest, [(3, Instruction::Complete { result: None })]);
        }
    }

    #[test]
    fn an_event_whose_data_lines_pass_the_limit_is_refused_at_the_line_that_passes_it() {
        let mut reader = Reader::new(UploadFormat::EventStream, 100);
        let line = format!("data: {}\n", "a".repeat(60));
        let (none, error) = reader.read(line.as_bytes(), false);
        assert!(none.is_empty() && error.is_none(), "{error:?}");
        // Each line is within the limit; the event they build is not.
        let (none, error) = reader.read(line.as_bytes(), false);
        assert!(none.is_empty());
        match error {
            Some(ReadError::EventTooLong {
                line: 2,
                limit: 100,
            }) => {}
            other => panic!("{other:?}"),
        }
    }
}
