//! The body of an upload as the instructions it carries: NDJSON lines, or
//! the data of SSE events (OpenAI and AI SDK streams), each named by its
//! line so a refusal can say where. Chunks arrive split anywhere.

use super::generation_input::{Instruction, UploadFormat, event_stream_data, ndjson_line};
use crate::domain::SseParser;

/// Why the body's next instruction cannot be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    #[error("line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("line {line} is longer than {limit} bytes")]
    LineTooLong { line: u64, limit: usize },
}

/// Splits the body into instructions, each named by its line (an SSE
/// event by its last line).
pub(super) enum Reader {
    NdJson {
        pending: Vec<u8>,
        line: u64,
        max: usize,
    },
    EventStream {
        parser: SseParser,
        max: usize,
    },
}

impl Reader {
    pub(super) fn new(format: UploadFormat, max: usize) -> Self {
        match format {
            UploadFormat::NdJson => Self::NdJson {
                pending: Vec::new(),
                line: 0,
                max,
            },
            UploadFormat::EventStream => Self::EventStream {
                parser: SseParser::with_max_line_bytes(max),
                max,
            },
        }
    }

    /// The instructions of `chunk` (and what earlier chunks left unfinished);
    /// `last` reads an unterminated final NDJSON line too. The instructions
    /// before a malformed line come back with its error, so they are applied.
    pub(super) fn read(
        &mut self,
        chunk: &[u8],
        last: bool,
    ) -> (Vec<Instruction>, Option<ReadError>) {
        let mut out = Vec::new();
        let error = self.read_into(chunk, last, &mut out).err();
        (out, error)
    }

    fn read_into(
        &mut self,
        chunk: &[u8],
        last: bool,
        out: &mut Vec<Instruction>,
    ) -> Result<(), ReadError> {
        match self {
            Self::NdJson { pending, line, max } => {
                pending.extend_from_slice(chunk);
                let mut start = 0;
                while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
                    *line += 1;
                    if end > *max {
                        return Err(ReadError::LineTooLong {
                            line: *line,
                            limit: *max,
                        });
                    }
                    out.push(ndjson(&pending[start..start + end], *line)?);
                    start += end + 1;
                }
                pending.drain(..start);
                if pending.len() > *max {
                    return Err(ReadError::LineTooLong {
                        line: *line + 1,
                        limit: *max,
                    });
                }
                if last && !pending.is_empty() {
                    *line += 1;
                    out.push(ndjson(pending, *line)?);
                    pending.clear();
                }
            }
            Self::EventStream { parser, max } => {
                parser.push(chunk);
                loop {
                    match parser.next_event() {
                        Ok(Some(sse)) => {
                            // Named by its last line: the blank line that
                            // ended it is the one the parser just read.
                            let instruction = event_stream_data(&sse.data).map_err(|reason| {
                                ReadError::Malformed {
                                    line: parser.lines_read() - 1,
                                    reason,
                                }
                            })?;
                            out.push(instruction);
                        }
                        Ok(None) => break,
                        Err(_) => {
                            return Err(ReadError::LineTooLong {
                                line: parser.lines_read() + 1,
                                limit: *max,
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn ndjson(bytes: &[u8], line: u64) -> Result<Instruction, ReadError> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| ReadError::Malformed {
        line,
        reason: "the line is not UTF-8".into(),
    })?;
    ndjson_line(text).map_err(|reason| ReadError::Malformed { line, reason })
}
