//! The body of an upload as the instructions it carries: NDJSON lines, or
//! the data of SSE events (a model provider's or the AI SDK's stream), each
//! named by its line so a refusal can say where. Chunks arrive split
//! anywhere.
//!
//! An NDJSON line that is not one of the broker's own may be a provider's
//! chunk (an SDK's `toReadableStream()` writes its stream as JSON lines).
//! An event-stream body that starts as JSON is not a stream but, nearly
//! always, the provider's error answer piped in unchecked: it is read whole
//! and fails the task with the provider's message.

use super::{
    generation_input::{Instruction, UploadEnds, UploadFormat, ndjson_line},
    provider_events::{
        Dialect, Ending, EventRead, ToolCallAssembly, ToolCallError, event_stream_data,
        provider_line,
    },
    tasks::Delta,
    upload_error::ReadError,
    upload_halves::{WaitingHalf, replacement_character, split_characters_joined},
    upload_rules::ReadRules,
    upload_shape::{Shape, shape_of},
};
use crate::domain::{SseParseError, SseParser, TextKind, extend_held, shrink_after_long_line};

/// Splits the body into instructions, each named by its line (an SSE
/// event by its last line).
pub(super) struct Reader {
    body: Body,
    /// Whose stream it is, as its first telling event or line said.
    dialect: Option<Dialect>,
    /// The first half of a character split between two lines (see
    /// `surrogate_pairs`), waiting for its second half.
    half: Option<WaitingHalf>,
    /// What a provider's events said of its answer's end, so far.
    ending: Ending,
    /// The highest `seq` accepted so far (the task's when the upload
    /// began, then this upload's): a line at or below it is a retry, which
    /// must not touch a waiting half character.
    seq_floor: Option<u64>,
    /// The tool calls a provider is streaming in pieces.
    tool_calls: ToolCallAssembly,
    /// Where steps, the answer and parts of text end.
    rules: ReadRules,
    max: usize,
}

enum Body {
    NdJson {
        pending: Vec<u8>,
        /// The leading bytes of `pending` already searched for a line end:
        /// a long line arriving in many chunks is scanned once, not once
        /// per chunk.
        scanned: usize,
        line: u64,
    },
    EventStream {
        parser: SseParser,
        /// What the body turned out to be, from its first byte that is not
        /// white space.
        shape: Shape,
    },
}

impl Reader {
    /// A reader of a body in `format`, lines up to `max` bytes, whose end
    /// marker ends what `ends` says.
    pub(super) fn new(format: UploadFormat, max: usize, ends: UploadEnds) -> Self {
        let body = match format {
            UploadFormat::NdJson => Body::NdJson {
                pending: Vec::new(),
                scanned: 0,
                line: 0,
            },
            UploadFormat::EventStream => Body::EventStream {
                parser: SseParser::with_max_line_bytes(max)
                    .refusing_invalid_utf8()
                    .refusing_json_lines(),
                shape: Shape::Unknown(Vec::new()),
            },
        };
        Self {
            body,
            dialect: None,
            half: None,
            seq_floor: None,
            ending: Ending::default(),
            tool_calls: ToolCallAssembly::new(max),
            rules: ReadRules::new(ends, format == UploadFormat::EventStream),
            max,
        }
    }

    /// The task's last accepted `seq` when the upload began: a retried
    /// upload's lines up to it, which LiveTasks ignores, leave the half
    /// character waiting from the line before untouched, so half a
    /// character on an ignored line neither completes nor stands for one on
    /// a line that counts.
    pub(super) fn skip_seq_through(&mut self, accepted: Option<u64>) {
        self.seq_floor = accepted;
    }

    /// Bytes the reader holds of what has not made an instruction yet:
    /// an unfinished line or event, a body not yet told apart, the inputs
    /// of tool calls still streaming (what the uploads' memory budget
    /// counts).
    pub(super) fn held_bytes(&self) -> usize {
        let body = match &self.body {
            Body::NdJson { pending, .. } => pending.capacity(),
            Body::EventStream { parser, shape } => {
                parser.held_bytes()
                    + match shape {
                        Shape::Unknown(held) => held.capacity(),
                        Shape::Json(document) => document.held_bytes(),
                        Shape::Events => 0,
                    }
            }
        };
        body + self.tool_calls.held_bytes()
    }

    /// What the body was read as: the dialect of its events or lines, or
    /// its format (`ndjson`, `event_stream`) while none of them told.
    pub(super) fn read_as(&self) -> &'static str {
        match (self.dialect, &self.body) {
            (Some(dialect), _) => dialect.label(),
            (None, Body::NdJson { .. }) => UploadFormat::NdJson.label(),
            (None, Body::EventStream { .. }) => UploadFormat::EventStream.label(),
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
        if error.is_some() {
            // The lines before a refused one are applied, and so is what
            // they left owing.
            out.extend(self.owed());
        }
        let stopping = last || error.is_some();
        if self.dialect.is_some() {
            self.rules.read_a_stream();
        }
        self.rules.apply(&mut out, stopping);
        (out, error)
    }

    /// What the body owes once it stops where it is (it ended, broke, or a
    /// line was refused): half a character waiting for a line that will
    /// not come, as the U+FFFD it stands for, and the completion of an
    /// answer its provider said was whole but nothing ended.
    pub(super) fn left_over(&mut self) -> Vec<(u64, Instruction)> {
        let mut out = self.owed();
        self.rules.apply(&mut out, true);
        out
    }

    /// [`Self::left_over`] before the step rules.
    fn owed(&mut self) -> Vec<(u64, Instruction)> {
        let line = match &self.body {
            Body::NdJson { line, .. } => *line,
            Body::EventStream { parser, .. } => parser.lines_read(),
        };
        let half = self
            .half
            .take()
            .map(|half| replacement_character(half.kind));
        let abandoned = self.tool_calls.abandon();
        if abandoned > 0 {
            tracing::info!(
                tool_calls = abandoned,
                "the upload stopped before its tool calls were whole; they are dropped"
            );
        }
        half.into_iter()
            .chain(self.ending.at_body_end())
            .map(|instruction| (line, instruction))
            .collect()
    }

    fn read_into(
        &mut self,
        chunk: &[u8],
        last: bool,
        out: &mut Vec<(u64, Instruction)>,
    ) -> Result<(), ReadError> {
        let (max, dialect, half) = (self.max, &mut self.dialect, &mut self.half);
        let seq_floor = &mut self.seq_floor;
        let (ending, tool_calls) = (&mut self.ending, &mut self.tool_calls);
        let mut take = |line: u64,
                        (mut read, dropped_half): (EventRead, Option<TextKind>)|
         -> Result<(), ReadError> {
            *dialect = dialect.or(read.dialect);
            // A refused line applies nothing of itself, neither its text
            // nor its end (a finish said on it would complete the task at
            // the body's end): what it said of the end is taken back.
            let before = read.note.as_ref().map(|_| ending.clone());
            if let Some(note) = read.note.take() {
                ending.note(note);
            }
            if let Some(kind) = dropped_half {
                out.push((line, replacement_character(kind)));
            }
            let applied = out.len();
            read.emit_in_order(ending, tool_calls, |instruction| {
                out.push((line, instruction));
            })
            .map_err(|error| {
                out.truncate(applied);
                if let Some(before) = before {
                    *ending = before;
                }
                match error {
                    ToolCallError::Invalid(reason) => ReadError::Malformed { line, reason },
                    ToolCallError::TooLong { id, limit } => {
                        ReadError::ToolInputTooLong { line, id, limit }
                    }
                }
            })
        };
        match &mut self.body {
            Body::NdJson {
                pending,
                scanned,
                line,
            } => {
                extend_held(pending, chunk);
                let mut start = 0;
                let mut from = *scanned;
                while let Some(offset) = memchr::memchr(b'\n', &pending[from..]) {
                    let end = from + offset;
                    *line += 1;
                    if end - start > max {
                        return Err(ReadError::LineTooLong {
                            line: *line,
                            limit: max,
                        });
                    }
                    take(*line, ndjson(&pending[start..end], *line, half, seq_floor)?)?;
                    start = end + 1;
                    from = start;
                }
                pending.drain(..start);
                shrink_after_long_line(pending);
                *scanned = pending.len();
                if pending.len() > max {
                    return Err(ReadError::LineTooLong {
                        line: *line + 1,
                        limit: max,
                    });
                }
                if last && !pending.is_empty() {
                    *line += 1;
                    take(*line, ndjson(pending, *line, half, seq_floor)?)?;
                    pending.clear();
                    *scanned = 0;
                }
            }
            Body::EventStream { parser, shape } => {
                let held;
                let mut chunk = chunk;
                if let Shape::Unknown(head) = shape {
                    extend_held(head, chunk);
                    let Some((told, from)) = shape_of(head, last)? else {
                        if head.len() > max {
                            return Err(ReadError::LineTooLong {
                                line: 1,
                                limit: max,
                            });
                        }
                        return Ok(());
                    };
                    held = std::mem::take(head);
                    *shape = told;
                    chunk = &held[from..];
                }
                if let Shape::Json(document) = shape {
                    document.push(chunk)?;
                    if document.len() > max {
                        return Err(ReadError::JsonTooLong { limit: max });
                    }
                    if last {
                        take(1, (EventRead::one(document.answer()?, None), None))?;
                    }
                    return Ok(());
                }
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
                            let read = split_characters_joined(half, &sse.data, event_stream_data)
                                .map_err(|reason| ReadError::Malformed { line, reason })?;
                            take(line, read)?;
                        }
                        Ok(None) => break,
                        Err(SseParseError::LineTooLong { .. }) => {
                            return Err(ReadError::LineTooLong {
                                line: parser.lines_read() + 1,
                                limit: max,
                            });
                        }
                        Err(SseParseError::EventTooLong { .. }) => {
                            return Err(ReadError::EventTooLong {
                                line: parser.lines_read(),
                                limit: max,
                            });
                        }
                        Err(SseParseError::NotUtf8) => {
                            return Err(ReadError::Malformed {
                                line: parser.lines_read() + 1,
                                reason: NOT_UTF8.into(),
                            });
                        }
                        Err(SseParseError::JsonLine) => {
                            return Err(ReadError::Malformed {
                                line: parser.lines_read() + 1,
                                reason: JSON_LINE.into(),
                            });
                        }
                    }
                }
            }
        }
        if last {
            out.extend(self.owed());
        }
        Ok(())
    }
}

const NOT_UTF8: &str = "the line is not UTF-8";
const JSON_LINE: &str = "the line is JSON, not an event-stream field (an SDK's toReadableStream()?): send JSON lines as application/x-ndjson";

/// One NDJSON line (without its line end): the broker's own, or a
/// provider's chunk.
fn ndjson(
    bytes: &[u8],
    line: u64,
    half: &mut Option<WaitingHalf>,
    seq_floor: &mut Option<u64>,
) -> Result<(EventRead, Option<TextKind>), ReadError> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    // The SSE forms drop a leading BOM too.
    let bytes = match line {
        1 => bytes.strip_prefix(crate::domain::UTF8_BOM).unwrap_or(bytes),
        _ => bytes,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| ReadError::Malformed {
        line,
        reason: NOT_UTF8.into(),
    })?;
    let read = |text: &str| match ndjson_line(text) {
        Ok(instruction) => Ok(EventRead::one(instruction, None)),
        Err(reason) => provider_line(text).ok_or(reason),
    };
    let waiting = *half;
    let (read, dropped) = split_characters_joined(half, text, read)
        .map_err(|reason| ReadError::Malformed { line, reason })?;
    let Instruction::Delta(Delta { seq: Some(seq), .. }) = &read.instruction else {
        return Ok((read, dropped));
    };
    if seq_floor.is_some_and(|floor| *seq <= floor) {
        // A retry, which LiveTasks ignores (and counts): its text never
        // lands, so neither may its effect on the half waiting before it.
        *half = waiting;
        return Ok((read, None));
    }
    *seq_floor = Some(*seq);
    Ok((read, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deltas(instructions: &[(u64, Instruction)]) -> Vec<String> {
        instructions
            .iter()
            .map(|(_, i)| match i {
                Instruction::Delta(delta) => delta.text.clone(),
                other => panic!("not a delta: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_long_line_is_held_while_it_lasts_and_given_back_once_read() {
        let text = "a".repeat(1 << 20);
        for format in [UploadFormat::NdJson, UploadFormat::EventStream] {
            let (line, end) = match format {
                UploadFormat::NdJson => (format!("{{\"delta\": \"{text}\"}}"), "\n"),
                UploadFormat::EventStream => (
                    format!("data: {{\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"{text}\"}}"),
                    "\n\n",
                ),
            };
            let mut reader = Reader::new(format, 4 << 20, UploadEnds::default());
            let (read, error) = reader.read(line.as_bytes(), false);
            assert!(read.is_empty() && error.is_none(), "{format:?}");
            assert!(
                reader.held_bytes() > 1 << 20,
                "{format:?}: held while unfinished"
            );
            let (read, error) = reader.read(end.as_bytes(), false);
            assert_eq!(read.len(), 1, "{format:?}: {error:?}");
            let (read, _) = reader.read(b"", false);
            assert!(read.is_empty());
            assert!(
                reader.held_bytes() <= 64 * 1024,
                "{format:?}: {} bytes kept after the line",
                reader.held_bytes()
            );
        }
    }

    /// The `openai` package's `toReadableStream()` writes one chunk per
    /// line; cut by UTF-16 unit, a chunk's text may hold half a character.
    #[test]
    fn json_lines_sent_as_an_event_stream_are_refused_saying_to_send_ndjson() {
        let halves = concat!(
            "{\"choices\":[{\"delta\":{\"content\":\"Hi \\ud83d\"}}]}\n",
            "{\"choices\":[{\"delta\":{\"content\":\"\\udc4b\"}}]}\n",
        );
        let whole = "{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n{\"choices\":[]}\n";
        let broken = "{\"choices\":\n[{\"delta\":\n";
        for (body, says) in [
            (halves, "send them as application/x-ndjson"),
            (whole, "send them as application/x-ndjson"),
            (broken, "JSON that does not parse"),
        ] {
            let mut reader = Reader::new(UploadFormat::EventStream, 1 << 16, UploadEnds::Task);
            let (got, error) = reader.read(body.as_bytes(), true);
            assert!(got.is_empty(), "{got:?}");
            match error {
                Some(ReadError::Malformed { line: 1, reason }) => {
                    assert!(reason.contains(says), "{body:?}: {reason}")
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    /// Refused at the second line's first byte, not at the body's end:
    /// the producer stops before streaming a whole answer for nothing.
    #[test]
    fn json_lines_sent_as_an_event_stream_are_refused_before_the_body_ends() {
        let first = "{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n";
        let mut reader = Reader::new(UploadFormat::EventStream, 1 << 16, UploadEnds::Task);
        for piece in [&first[..9], &first[9..], "\n  \n"] {
            let (got, error) = reader.read(piece.as_bytes(), false);
            assert!(got.is_empty() && error.is_none(), "{piece:?}: {error:?}");
        }
        let (got, error) = reader.read(b"{\"cho", false);
        assert!(got.is_empty());
        match error {
            Some(ReadError::Malformed { line: 1, reason }) => {
                assert!(
                    reason.contains("send them as application/x-ndjson"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// After a first line that is an event stream's (a comment, an
    /// event), JSON lines were ignored as unknown fields: the upload was
    /// answered 200 with nothing applied.
    #[test]
    fn a_json_line_inside_an_event_stream_is_refused_naming_it() {
        let body = concat!(
            ": keep-alive\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "{\"choices\":[{\"delta\":{\"content\":\" there\"}}]}\n",
        );
        let mut reader = Reader::new(UploadFormat::EventStream, 1 << 16, UploadEnds::Task);
        let (got, error) = reader.read(body.as_bytes(), true);
        assert_eq!(deltas(&got), ["Hi"]);
        match error {
            Some(ReadError::Malformed { line: 5, reason }) => {
                assert!(reason.contains("application/x-ndjson"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_byte_order_mark_before_the_first_line_is_dropped_and_nowhere_else() {
        let body = "\u{feff}{\"delta\":\"a\"}\n\u{feff}{\"delta\":\"b\"}\n";
        let mut reader = Reader::new(UploadFormat::NdJson, 1024, UploadEnds::Task);
        let (got, error) = reader.read(body.as_bytes(), true);
        assert_eq!(deltas(&got), ["a"]);
        assert!(
            matches!(error, Some(ReadError::Malformed { line: 2, .. })),
            "{error:?}"
        );
    }

    /// The texts a body's lines give that LiveTasks would apply (a
    /// delta whose seq is not above the last one applied is ignored).
    fn texts_read(accepted_seq: Option<u64>, body: &str) -> Vec<String> {
        let mut reader = Reader::new(UploadFormat::NdJson, 1024, UploadEnds::Task);
        reader.skip_seq_through(accepted_seq);
        let (got, error) = reader.read(body.as_bytes(), true);
        assert!(error.is_none(), "{error:?}");
        let mut last = accepted_seq;
        let applied: Vec<(u64, Instruction)> = got
            .into_iter()
            .filter(|(_, instruction)| match instruction {
                Instruction::Delta(Delta { seq: Some(seq), .. }) => {
                    let fresh = last.is_none_or(|last| *seq > last);
                    last = last.max(Some(*seq));
                    fresh
                }
                _ => true,
            })
            .collect();
        deltas(&applied)
    }

    #[test]
    fn a_retried_line_is_skipped_whole_with_its_half_character() {
        // Sent twice (a retry), then the character's second half.
        let retried = "{\"delta\":\"a\\ud83d\",\"seq\":1}\n\
                       {\"delta\":\"a\\ud83d\",\"seq\":1}\n\
                       {\"delta\":\"\\ude00\",\"seq\":2}\n";
        assert_eq!(texts_read(None, retried), ["a", "\u{1F600}"]);
        // The retried line is another text with the same seq.
        let other = "{\"delta\":\"a\\ud83d\",\"seq\":1}\n\
                     {\"delta\":\"zzz\",\"seq\":1}\n\
                     {\"delta\":\"\\ude00b\",\"seq\":2}\n";
        assert_eq!(texts_read(None, other), ["a", "\u{1F600}b"]);
        // A new upload resending from seq 1, which the task accepted: the
        // second half alone stands for a character, as a half alone does.
        let resent = "{\"delta\":\"a\\ud83d\",\"seq\":1}\n\
                      {\"delta\":\"\\ude00b\",\"seq\":2}\n";
        assert_eq!(texts_read(Some(1), resent), ["\u{FFFD}b"]);
        // Lines without seq are never skipped.
        assert_eq!(
            texts_read(Some(5), "{\"delta\":\"x\"}\n{\"delta\":\"x\"}\n"),
            ["x", "x"]
        );
    }

    #[test]
    fn ndjson_lines_split_anywhere_read_the_same() {
        let body = "{\"delta\": \"a\"}\n{\"delta\": \"bc\"}\r\n{\"delta\": \"d\"}";
        for split in 0..=body.len() {
            let mut reader = Reader::new(UploadFormat::NdJson, 1024, UploadEnds::Task);
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
        let mut reader = Reader::new(UploadFormat::NdJson, 10_020, UploadEnds::Task);
        let mut got = Vec::new();
        for chunk in body.as_bytes().chunks(97) {
            let (instructions, error) = reader.read(chunk, false);
            assert!(error.is_none(), "{error:?}");
            got.extend(instructions);
        }
        assert_eq!(deltas(&got), [text, "y".to_owned()]);

        let mut reader = Reader::new(UploadFormat::NdJson, 1000, UploadEnds::Task);
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
            let (instructions, error) =
                Reader::new(format, 1000, UploadEnds::Task).read(body, true);
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
            let mut reader = Reader::new(UploadFormat::EventStream, 1000, UploadEnds::Task);
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
        let mut reader = Reader::new(UploadFormat::EventStream, 100, UploadEnds::Task);
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

    /// The body read in one chunk: its instructions, the error, `read_as`.
    fn read_whole(
        format: UploadFormat,
        body: &str,
    ) -> (Vec<Instruction>, Option<String>, &'static str) {
        let mut reader = Reader::new(format, 4096, UploadEnds::Task);
        let (got, error) = reader.read(body.as_bytes(), true);
        let instructions = got
            .into_iter()
            .map(|(_, instruction)| instruction)
            .collect();
        (instructions, error.map(|e| e.to_string()), reader.read_as())
    }

    #[test]
    fn an_sdks_json_lines_are_read_as_the_providers_stream() {
        let body = concat!(
            "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n",
            "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n",
            "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n",
        );
        let (instructions, error, read_as) = read_whole(UploadFormat::NdJson, body);
        assert_eq!(error, None);
        assert_eq!(read_as, "openai_chat");
        let delta = Instruction::answer("Hi");
        // No `[DONE]` in JSON lines: the finish is noted, and the body's
        // end completes the answer with it.
        let done = Instruction::Complete {
            result: Some(
                serde_json::json!({ "finish_reason": "stop", "provider_finish_reason": "stop" }),
            ),
        };
        assert_eq!(
            instructions,
            [Instruction::Nothing, delta, Instruction::Nothing, done]
        );
        // The broker's own lines are still refused in its own words.
        let (_, error, _) = read_whole(UploadFormat::NdJson, "{\"delta\": 5}\n");
        assert!(error.unwrap().contains("delta"));
    }

    #[test]
    fn a_providers_error_answer_sent_as_an_event_stream_fails_the_task_with_its_message() {
        let answer = "{\n    \"error\": {\n        \"message\": \"Incorrect API key provided\",\n        \"type\": \"invalid_request_error\"\n    }\n}\n";
        for split in 0..=answer.len() {
            let mut reader = Reader::new(UploadFormat::EventStream, 4096, UploadEnds::Task);
            let (mut got, error) = reader.read(&answer.as_bytes()[..split], false);
            assert!(
                error.is_none() && got.is_empty(),
                "split at {split}: {error:?}"
            );
            let (rest, error) = reader.read(&answer.as_bytes()[split..], true);
            assert!(error.is_none(), "split at {split}: {error:?}");
            got.extend(rest);
            let fail = Instruction::Fail {
                error: "Incorrect API key provided".into(),
            };
            assert_eq!(got, [(1, fail)], "split at {split}");
        }
    }

    #[test]
    fn an_event_stream_body_that_is_no_stream_is_refused_saying_what_it_is() {
        let (_, error, _) = read_whole(
            UploadFormat::EventStream,
            "\n<html><body>502 Bad Gateway</body></html>",
        );
        let error = error.expect("refused");
        assert!(
            error.starts_with("line 2: the body is not an event stream: it begins \"<html>"),
            "{error}"
        );
        let lines = "{\"type\":\"message_start\"}\n{\"type\":\"message_stop\"}\n";
        let (_, error, _) = read_whole(UploadFormat::EventStream, lines);
        assert!(error.expect("refused").contains("application/x-ndjson"));
        let (_, error, _) = read_whole(UploadFormat::EventStream, "{\"ok\": true}");
        let error = error.expect("refused");
        assert!(error.contains("a JSON document"), "{error}");
        assert!(error.contains("as application/x-ndjson"), "{error}");
        // A comment or a field name first is a stream.
        let (got, error, _) = read_whole(UploadFormat::EventStream, ": hi\n\ndata: [DONE]\n\n");
        assert_eq!(
            (got, error),
            (vec![Instruction::Complete { result: None }], None)
        );
    }

    #[test]
    fn a_body_that_is_no_stream_is_told_from_its_whole_first_line() {
        for (body, begins) in [
            ("Internal Server Error", "Internal Server Error"),
            ("null\n", "null"),
            (
                "upstream connect error or disconnect/reset before headers",
                "upstream connect error or disconnect/res",
            ),
        ] {
            let (_, error, _) = read_whole(UploadFormat::EventStream, body);
            let error = error.expect(body);
            assert!(
                error.contains(&format!("it begins {begins:?}")),
                "{body}: {error}"
            );
        }
        // Byte by byte, it is still told by its whole first line.
        let page = "<!DOCTYPE html><html><body>502</body></html>\n";
        let mut reader = Reader::new(UploadFormat::EventStream, 4096, UploadEnds::Task);
        let mut refusal = None;
        for (at, byte) in page.bytes().enumerate() {
            let (_, error) = reader.read(&[byte], at + 1 == page.len());
            if let Some(error) = error {
                refusal = Some(error.to_string());
                break;
            }
        }
        let refusal = refusal.expect("refused");
        assert!(
            refusal.contains("it begins \"<!DOCTYPE html><html>"),
            "{refusal}"
        );
    }

    #[test]
    fn a_json_error_answer_after_a_byte_order_mark_still_fails_the_task() {
        let (got, error, _) = read_whole(
            UploadFormat::EventStream,
            "\u{FEFF}{\"error\":{\"message\":\"bad key\"}}",
        );
        assert_eq!(error, None);
        assert_eq!(
            got,
            [Instruction::Fail {
                error: "bad key".into()
            }]
        );
        let mut reader = Reader::new(UploadFormat::EventStream, 16, UploadEnds::Task);
        let (_, error) = reader.read(b"{\"error\": {\"message\": \"long\"}}", false);
        assert!(
            matches!(error, Some(ReadError::JsonTooLong { limit: 16 })),
            "{error:?}"
        );
    }

    #[test]
    fn half_a_character_no_line_completes_stands_as_the_replacement_character() {
        let fffd = Instruction::answer("\u{FFFD}");
        let a = Instruction::answer("a");
        let done = Instruction::Complete { result: None };
        // Before the next line, whatever it is.
        let body = "{\"delta\":\"a\\ud83d\"}\n{\"complete\":{}}\n";
        let (got, error, _) = read_whole(UploadFormat::NdJson, body);
        assert_eq!(error, None);
        assert_eq!(got, [a.clone(), fffd.clone(), done]);
        // At the body's end.
        let (got, _, _) = read_whole(UploadFormat::NdJson, "{\"delta\":\"a\\ud83d\"}\n");
        assert_eq!(got, [a, fffd]);
    }

    #[test]
    fn half_a_character_of_the_reasoning_never_crosses_into_the_answer() {
        let thought = |text: &str| Instruction::reasoning(text);
        let done = Instruction::Complete { result: None };
        let progress = Instruction::Progress {
            progress: Some(50.0),
            stage: None,
            message: None,
            force: false,
        };
        for (body, expected) in [
            // Completed by the reasoning's next piece, across a progress line.
            (
                "{\"reasoning\":\"r\\ud83e\"}\n{\"progress\":50}\n{\"reasoning\":\"\\udd14s\"}\n",
                vec![thought("r"), progress.clone(), thought("\u{1F914}s")],
            ),
            // Not completed: its U+FFFD is reasoning, before the end.
            (
                "{\"reasoning\":\"r\\ud83e\"}\n{\"complete\":{}}\n",
                vec![thought("r"), thought("\u{FFFD}"), done.clone()],
            ),
            // The answer's low half does not complete the reasoning's high one.
            (
                "{\"reasoning\":\"r\\ud83e\"}\n{\"delta\":\"\\udd14t\"}\n",
                vec![
                    thought("r"),
                    thought("\u{FFFD}"),
                    Instruction::answer("\u{FFFD}t"),
                ],
            ),
            // At the body's end.
            (
                "{\"reasoning\":\"r\\ud83e\"}\n",
                vec![thought("r"), thought("\u{FFFD}")],
            ),
        ] {
            let (got, error, _) = read_whole(UploadFormat::NdJson, body);
            assert_eq!(error, None, "{body}");
            assert_eq!(got, expected, "{body}");
        }
    }

    #[test]
    fn a_refused_line_leaves_the_half_before_it_as_the_replacement_character() {
        let (got, error, _) = read_whole(
            UploadFormat::NdJson,
            "{\"delta\":\"\\ud83d\"}\n{\"delta\":\n",
        );
        assert!(error.expect("refused").starts_with("line 2:"));
        let fffd = Instruction::answer("\u{FFFD}");
        let empty = Instruction::answer(String::new());
        assert_eq!(got, [empty, fffd]);
    }

    #[test]
    fn an_openai_answer_completes_at_done_with_its_finish_reason_and_usage() {
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}}\n\n",
            "data: [DONE]\n\n",
        );
        let whole = Instruction::Complete {
            result: Some(serde_json::json!({
                "finish_reason": "length",
                "provider_finish_reason": "length",
                "usage": { "input_tokens": 9, "output_tokens": 1, "total_tokens": 10 },
            })),
        };
        let (instructions, error, _) = read_whole(UploadFormat::EventStream, body);
        assert_eq!(error, None);
        assert_eq!(instructions.last(), Some(&whole));
        let ends = |instructions: &[Instruction]| {
            instructions
                .iter()
                .filter(|i| matches!(i, Instruction::Complete { .. }))
                .count()
        };
        assert_eq!(ends(&instructions), 1, "{instructions:?}");

        // Cut after the usage chunk (the connection broke, or a line after
        // it was refused): the answer was whole, and completes so.
        let cut = body.find("data: [DONE]").unwrap();
        let mut reader = Reader::new(UploadFormat::EventStream, 4096, UploadEnds::Task);
        let (mut got, error) = reader.read(&body.as_bytes()[..cut], false);
        assert!(error.is_none());
        got.extend(reader.left_over());
        let got: Vec<_> = got.into_iter().map(|(_, i)| i).collect();
        assert_eq!(got.last(), Some(&whole));
        assert_eq!(reader.left_over(), [], "owed once");
        let refused = format!("{}data: {{not json\n\n", &body[..cut]);
        let (instructions, error, _) = read_whole(UploadFormat::EventStream, &refused);
        assert!(error.is_some());
        assert_eq!(instructions.last(), Some(&whole));

        // Before its finish, a body that ends leaves the task running.
        let early = body
            .find("data: {\"choices\":[{\"index\":0,\"delta\":{},")
            .unwrap();
        let (instructions, _, _) = read_whole(UploadFormat::EventStream, &body[..early]);
        assert_eq!(ends(&instructions), 0, "{instructions:?}");
        // A failure beside the finish owes nothing at the end.
        let failed = format!(
            "{}data: {{\"error\":{{\"message\":\"gone\"}},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n",
            &body[..early]
        );
        let (instructions, _, _) = read_whole(UploadFormat::EventStream, &failed);
        assert_eq!(
            instructions.last(),
            Some(&Instruction::Fail {
                error: "gone".into()
            })
        );
    }

    #[test]
    fn spaces_before_the_first_field_are_no_event_stream() {
        let (_, error, _) = read_whole(
            UploadFormat::EventStream,
            "\n   data: {\"type\":\"finish\"}\n\n",
        );
        let error = error.expect("refused");
        assert!(error.contains("it begins \"   data:"), "{error}");
        let (got, _, _) = read_whole(UploadFormat::EventStream, " {\"error\":{\"message\":\"\"}}");
        let fail = Instruction::Fail {
            error: "the model provider failed".into(),
        };
        assert_eq!(got, [fail]);
    }
}
