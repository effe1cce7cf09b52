//! The `text/event-stream` decoder: the other half of [`super::sse_frame`].
//!
//! One incremental parser after the WHATWG "interpret an event stream"
//! steps, shared by everything that reads SSE: the integration tests, the
//! `sse-bench` load generator, and producers' SSE bodies piped into the
//! broker. Lines end in CRLF, LF or CR (a CR at the end of one chunk and an
//! LF at the start of the next are one line end); a leading BOM is dropped;
//! `:` lines are comments; one space after the colon is stripped; `data`
//! lines join with `\n`; a blank line dispatches the event; an event without
//! `data` is not dispatched; an `id` containing NUL and a `retry` that is not
//! all digits are ignored; an unfinished event at the end is discarded
//! (simply never dispatched). Bytes are decoded as UTF-8 with replacement,
//! as the spec says, so a bad byte never stops a stream.
//!
//! Bytes go in as they arrive ([`SseParser::push`]), in chunks split
//! anywhere, and events come out one at a time ([`SseParser::next_event`]);
//! no I/O happens here.
//!
//! One deliberate difference from a browser: [`SseEvent::id`] is the `id`
//! field *of this event*, not the sticky "last event ID" of the spec, so a
//! reader can tell an event that carried no id line.
//! [`SseParser::last_event_id`] keeps the spec's sticky value.

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id` field of this event, if it had one.
    pub id: Option<String>,
    /// The `event` field; `None` (or empty) means the default type, `message`.
    pub event: Option<String>,
    /// The `data` lines joined with `\n`.
    pub data: String,
    /// A valid (all-digit) `retry` field seen in this event, as sent: the
    /// text, because a reconnection time too large for an integer is still valid.
    pub retry: Option<String>,
}

impl SseEvent {
    /// The event type an `EventSource` would dispatch it as.
    pub fn event_type(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

/// Why the parser gave up on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseParseError {
    /// A line is longer than the limit set with [`SseParser::with_max_line_bytes`].
    #[error("an SSE line is longer than {limit} bytes")]
    LineTooLong { limit: usize },
    /// The `data` of the event being read (its lines joined) is longer
    /// than that same limit: an event that never ends cannot grow memory
    /// without bound either.
    #[error("an SSE event's data is longer than {limit} bytes")]
    EventTooLong { limit: usize },
    /// A line that is not UTF-8, from a parser made with
    /// [`SseParser::refusing_invalid_utf8`].
    #[error("an SSE line is not UTF-8")]
    NotUtf8,
    /// A line that begins like JSON (`{` or `[`), from a parser made with
    /// [`SseParser::refusing_json_lines`]: no field is named so, and the
    /// spec would ignore it, silently.
    #[error("an SSE line is JSON, not a field")]
    JsonLine,
}

/// Appends `bytes` to a buffer that may hold a long unfinished line.
/// Past [`DOUBLING_UP_TO`] it grows by an eighth, not twice its size: the
/// uploads' memory budget counts what buffers hold, and a doubled buffer
/// could hold nearly twice its line (a 900 KiB line in 1.4 MiB), so a line
/// well within the budget was refused. Growth stays geometric, so a line
/// arriving in small chunks is still copied only a few times over.
pub fn extend_held(buffer: &mut Vec<u8>, bytes: &[u8]) {
    let needed = buffer.len() + bytes.len();
    if needed > buffer.capacity() && needed > DOUBLING_UP_TO {
        let grown = needed.max(buffer.capacity() + buffer.capacity() / 8);
        buffer.reserve_exact(grown - buffer.len());
    }
    buffer.extend_from_slice(bytes);
}

/// Below this a buffer grows as `Vec` grows it (doubling): tokens and
/// providers' chunks never reach it.
const DOUBLING_UP_TO: usize = 64 * 1024;

/// A buffer kept after a long line is given back once the line is read:
/// a stream that sent one long line does not hold its size for good.
pub fn shrink_after_long_line(buffer: &mut Vec<u8>) {
    const KEEP: usize = 16 * 1024;
    let keep = buffer.len().max(KEEP);
    if buffer.capacity() > 4 * keep {
        buffer.shrink_to(keep);
    }
}

/// The incremental parser. After an error the stream is broken: drop the parser.
#[derive(Debug)]
pub struct SseParser {
    /// Pushed bytes; those before `read` are parsed already.
    buffer: Vec<u8>,
    read: usize,
    /// Bytes from `read` on already searched for a line end without one: a
    /// long line arriving in many small chunks is scanned once, not once
    /// per chunk.
    scanned: usize,
    /// The last line ended in a CR: an LF right after it ends no new line.
    after_cr: bool,
    /// A line has been completed already (the BOM can only lead the first).
    started: bool,
    /// Longest line accepted, terminator excluded.
    max_line_bytes: usize,
    /// Fail on a line that is not UTF-8 instead of replacing its bad bytes.
    refuse_invalid_utf8: bool,
    refuse_json_lines: bool,
    /// Lines completed so far.
    lines: u64,
    event: EventBuilder,
}

/// The fields of the event being read, and the sticky last event ID.
#[derive(Debug, Default)]
struct EventBuilder {
    /// The `data` lines so far, joined with `\n`; `None` before the first.
    data: Option<String>,
    event: Option<String>,
    id: Option<String>,
    retry: Option<String>,
    last_event_id: Option<String>,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser that takes lines of any length, for trusted streams.
    pub fn new() -> Self {
        Self::with_max_line_bytes(usize::MAX)
    }

    /// A parser that fails on a line, or an event's data, longer than
    /// `limit` bytes, so a stream that never ends its line or its event
    /// cannot grow memory without bound.
    pub fn with_max_line_bytes(limit: usize) -> Self {
        Self {
            buffer: Vec::new(),
            read: 0,
            scanned: 0,
            after_cr: false,
            started: false,
            max_line_bytes: limit,
            refuse_invalid_utf8: false,
            refuse_json_lines: false,
            lines: 0,
            event: EventBuilder::default(),
        }
    }

    /// A parser that fails on a line that is not UTF-8, for input that is
    /// kept as text (a producer's upload), where a replaced byte would be
    /// a silent change of what was sent.
    pub fn refusing_invalid_utf8(self) -> Self {
        Self {
            refuse_invalid_utf8: true,
            ..self
        }
    }

    /// A parser that fails on a line beginning with `{` or `[`, for a
    /// producer's upload: JSON lines sent as an event stream would
    /// otherwise be ignored line by line, the whole upload lost in silence.
    pub fn refusing_json_lines(self) -> Self {
        Self {
            refuse_json_lines: true,
            ..self
        }
    }

    /// Adds bytes as they arrived; [`SseParser::next_event`] parses them.
    pub fn push(&mut self, bytes: &[u8]) {
        // Only an unfinished line is left before `read` is reached, so
        // this moves a few bytes, not the stream.
        self.buffer.drain(..self.read);
        self.read = 0;
        extend_held(&mut self.buffer, bytes);
        shrink_after_long_line(&mut self.buffer);
    }

    /// Bytes the parser holds: its buffer and the event being read.
    pub fn held_bytes(&self) -> usize {
        let event = &self.event;
        let capacity = |field: &Option<String>| field.as_ref().map_or(0, String::capacity);
        self.buffer.capacity()
            + capacity(&event.data)
            + capacity(&event.event)
            + capacity(&event.id)
            + capacity(&event.retry)
            + capacity(&event.last_event_id)
    }

    /// The next complete event in the bytes pushed so far, or `None` until
    /// more arrive.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseParseError> {
        loop {
            if self.after_cr {
                match self.buffer.get(self.read) {
                    None => return Ok(None),
                    Some(b'\n') => self.read += 1,
                    Some(_) => {}
                }
                self.after_cr = false;
            }
            let rest = &self.buffer[self.read..];
            let Some(end) =
                memchr::memchr2(b'\r', b'\n', &rest[self.scanned..]).map(|at| self.scanned + at)
            else {
                self.scanned = rest.len();
                return self.check_length(rest.len()).map(|()| None);
            };
            self.scanned = 0;
            self.after_cr = rest[end] == b'\r';
            if let Some(event) = self.complete_line(end, end + 1)? {
                return Ok(Some(event));
            }
        }
    }

    /// Reads the line of `length` bytes at the read position, then moves
    /// past it and its line end (`consumed` bytes in all).
    fn complete_line(
        &mut self,
        length: usize,
        consumed: usize,
    ) -> Result<Option<SseEvent>, SseParseError> {
        self.check_length(length)?;
        let mut line = &self.buffer[self.read..self.read + length];
        if !std::mem::replace(&mut self.started, true) {
            line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        }
        if self.refuse_invalid_utf8 && std::str::from_utf8(line).is_err() {
            return Err(SseParseError::NotUtf8);
        }
        if self.refuse_json_lines && matches!(line.first(), Some(b'{' | b'[')) {
            return Err(SseParseError::JsonLine);
        }
        let dispatched = self.event.line(line);
        self.read += consumed;
        self.lines += 1;
        if dispatched.is_none() {
            self.check_event_length()?;
        }
        Ok(dispatched)
    }

    /// At the end of the stream: the event it leaves unfinished, read as
    /// if a line end and a blank line followed. A browser discards such an
    /// event (a dropped connection may have cut it); a producer's body
    /// that ends cleanly ended there on purpose (`data: [DONE]` without
    /// the blank line after it). Call after [`SseParser::next_event`]
    /// returned `None`.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseParseError> {
        // What is left has no line end (`next_event` took every line).
        let left = self.buffer.len() - self.read;
        self.scanned = 0;
        if left > 0
            && let Some(event) = self.complete_line(left, left)?
        {
            return Ok(Some(event));
        }
        Ok(self.event.dispatch())
    }

    /// How many lines were completed so far: after an event is returned,
    /// the number of the blank line that ended it.
    pub fn lines_read(&self) -> u64 {
        self.lines
    }

    /// Pushes `bytes` and returns every event they completed, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseParseError> {
        self.push(bytes);
        std::iter::from_fn(|| self.next_event().transpose()).collect()
    }

    /// The spec's sticky last event ID: what a browser would resume from.
    pub fn last_event_id(&self) -> Option<&str> {
        self.event.last_event_id.as_deref()
    }

    fn check_event_length(&self) -> Result<(), SseParseError> {
        if self
            .event
            .data
            .as_ref()
            .is_some_and(|data| data.len() > self.max_line_bytes)
        {
            return Err(SseParseError::EventTooLong {
                limit: self.max_line_bytes,
            });
        }
        Ok(())
    }

    fn check_length(&self, line_bytes: usize) -> Result<(), SseParseError> {
        if line_bytes > self.max_line_bytes {
            return Err(SseParseError::LineTooLong {
                limit: self.max_line_bytes,
            });
        }
        Ok(())
    }
}

impl EventBuilder {
    /// Takes one line, terminator removed; a blank line may dispatch.
    fn line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return None, // a comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        // A line end is ASCII, so no character straddles two lines and
        // decoding line by line equals decoding the whole stream. Valid
        // UTF-8 (nearly always) takes the fast check, not the lossy walk.
        let value = match std::str::from_utf8(value) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value),
        };
        match name {
            b"event" => self.event = Some(value.into_owned()),
            // The spec appends each line and a LF, then drops the last LF at
            // dispatch: joining as lines arrive gives the same text.
            b"data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => self.data = Some(value.into_owned()),
            },
            b"id" if !value.contains('\0') => {
                // Reuses the sticky value's buffer: no allocation per event.
                let last = self.last_event_id.get_or_insert_with(String::new);
                last.clear();
                last.push_str(&value);
                self.id = Some(value.into_owned());
            }
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = Some(value.into_owned());
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let id = self.id.take();
        let retry = self.retry.take();
        let data = self.data.take()?;
        Some(SseEvent {
            id,
            event: event.filter(|event| !event.is_empty()),
            data,
            retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        chunks
            .iter()
            .flat_map(|chunk| parser.feed(chunk).unwrap())
            .collect()
    }

    fn event(id: Option<&str>, event: Option<&str>, data: &str, retry: Option<&str>) -> SseEvent {
        SseEvent {
            id: id.map(str::to_owned),
            event: event.map(str::to_owned),
            data: data.to_owned(),
            retry: retry.map(str::to_owned),
        }
    }

    /// Every rule in one stream, with all three line ends.
    const STREAM: &[u8] = b"\xEF\xBB\xBFretry: 3000\r\nevent: connected\r\ndata: {\"a\":1}\r\n\r\n\
: a comment\n\
id: 7\nevent: commit\ndata:x\ndata: y\n\n\
event: heartbeat\rdata: {\"ts\":1}\r\r\
id\ndata\n\n\
event: no-data\n\n\
id: 9\nevent: unfinished\ndata: lost";

    fn expected() -> Vec<SseEvent> {
        vec![
            event(None, Some("connected"), "{\"a\":1}", Some("3000")),
            event(Some("7"), Some("commit"), "x\ny", None),
            event(None, Some("heartbeat"), "{\"ts\":1}", None),
            event(Some(""), None, "", None),
        ]
    }

    #[test]
    fn a_long_buffer_holds_little_more_than_its_bytes_however_they_arrive() {
        // Doubling took a 700 KiB first chunk and 200 KiB more to 1.4 MiB.
        for chunks in [
            vec![700 * 1024, 200 * 1024],
            vec![8 * 1024; 113],
            vec![1 << 20],
        ] {
            let mut buffer = Vec::new();
            let mut copies = 0;
            for size in &chunks {
                let before = buffer.capacity();
                extend_held(&mut buffer, &vec![b'a'; *size]);
                copies += usize::from(buffer.capacity() != before);
            }
            let len = buffer.len();
            assert!(
                buffer.capacity() <= len + len / 8 + 64 * 1024,
                "{len} bytes in {} ({chunks:?})",
                buffer.capacity()
            );
            assert!(copies <= 40, "grown {copies} times");
        }
        // Small buffers grow as Vec grows them.
        let mut small = Vec::new();
        extend_held(&mut small, b"token");
        assert_eq!(small, b"token");
    }

    #[test]
    fn the_parser_follows_the_whatwg_steps() {
        assert_eq!(parse_all(&[STREAM]), expected());
    }

    #[test]
    fn a_stream_split_at_any_two_points_parses_the_same() {
        for first in 0..=STREAM.len() {
            for second in first..=STREAM.len() {
                let chunks = [&STREAM[..first], &STREAM[first..second], &STREAM[second..]];
                assert_eq!(parse_all(&chunks), expected(), "split at {first}, {second}");
            }
        }
    }

    #[test]
    fn one_byte_at_a_time_parses_the_same() {
        let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse_all(&chunks), expected());
    }

    #[test]
    fn a_cr_ending_one_chunk_and_an_lf_starting_the_next_are_one_line_end() {
        let parsed = parse_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(parsed, vec![event(None, None, "a\nb", None)]);
    }

    #[test]
    fn a_blank_line_ended_by_cr_dispatches_without_waiting_for_more() {
        let mut parser = SseParser::new();
        assert_eq!(
            parser.feed(b"data: a\r\r").unwrap(),
            vec![event(None, None, "a", None)]
        );
        assert_eq!(parser.feed(b"\ndata: b\n\n").unwrap().len(), 1);
    }

    #[test]
    fn only_one_space_after_the_colon_is_stripped() {
        let parsed = parse_all(&[b"data:  two\ndata:none\nevent:\tt\n\n"]);
        assert_eq!(parsed, vec![event(None, Some("\tt"), " two\nnone", None)]);
    }

    #[test]
    fn a_bom_is_dropped_only_at_the_start_of_the_stream() {
        let parsed = parse_all(&[b"\xEF\xBB", b"\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n"]);
        assert_eq!(parsed, vec![event(None, None, "a", None)]);
    }

    #[test]
    fn an_id_with_nul_is_ignored_and_the_last_event_id_is_sticky() {
        let mut parser = SseParser::new();
        let parsed = parser
            .feed(b"id: 1\ndata: a\n\nid: 2\0\ndata: b\n\ndata: c\n\n")
            .unwrap();
        assert_eq!(
            parsed,
            vec![
                event(Some("1"), None, "a", None),
                event(None, None, "b", None),
                event(None, None, "c", None),
            ]
        );
        assert_eq!(parser.last_event_id(), Some("1"));
    }

    #[test]
    fn a_retry_that_is_not_all_digits_is_ignored() {
        let parsed =
            parse_all(&[b"retry: 10s\ndata: a\n\nretry:\ndata: b\n\nretry: 5\ndata: c\n\n"]);
        let retries: Vec<_> = parsed.iter().map(|e| e.retry.as_deref()).collect();
        assert_eq!(retries, vec![None, None, Some("5")]);
    }

    #[test]
    fn unknown_fields_are_ignored_and_an_empty_type_means_message() {
        let parsed = parse_all(&[b"foo: bar\nevent:\ndata: x\n\n"]);
        assert_eq!(parsed, vec![event(None, None, "x", None)]);
        assert_eq!(parsed[0].event_type(), "message");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let parsed = parse_all(&[b"data: a\xFFb\n\n"]);
        assert_eq!(parsed[0].data, "a\u{FFFD}b");
    }

    #[test]
    fn a_parser_refusing_invalid_utf8_fails_on_the_line_and_keeps_what_came_before() {
        let mut parser = SseParser::new().refusing_invalid_utf8();
        assert_eq!(parser.feed(b"data: a\n\n").unwrap().len(), 1);
        assert_eq!(parser.feed(b"data: a\xFFb\n"), Err(SseParseError::NotUtf8));
        assert_eq!(parser.lines_read(), 2);
        // A character split between two chunks is not an error.
        let mut parser = SseParser::new().refusing_invalid_utf8();
        parser.push(b"data: \xC3");
        assert_eq!(parser.next_event(), Ok(None));
        assert_eq!(parser.feed(b"\xA9\n\n").unwrap()[0].data, "\u{e9}");
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_whether_or_not_it_ended() {
        let mut parser = SseParser::with_max_line_bytes(8);
        assert_eq!(parser.feed(b"data: 12\n\n").unwrap().len(), 1);
        let too_long = Err(SseParseError::LineTooLong { limit: 8 });
        assert_eq!(parser.feed(b"data: 123"), too_long);
        let mut parser = SseParser::with_max_line_bytes(8);
        assert_eq!(parser.feed(b"data: 123\n"), too_long);
    }

    #[test]
    fn an_event_whose_joined_data_passes_the_limit_is_an_error() {
        // Every line within 12 bytes; the data they join ("1234\n567\n8901") not.
        let mut parser = SseParser::with_max_line_bytes(12);
        assert_eq!(parser.feed(b"data: 1234\ndata: 567\n").unwrap(), vec![]);
        assert_eq!(
            parser.feed(b"data: 8901\n"),
            Err(SseParseError::EventTooLong { limit: 12 })
        );
    }

    #[test]
    fn finish_reads_what_the_end_leaves_unfinished_as_a_complete_event() {
        for (stream, data) in [
            (&b"data: a\n\ndata: b\n"[..], "b"),
            (&b"data: a\n\ndata: b"[..], "b"),
            (&b"data: a\n\ndata: b\r"[..], "b"),
        ] {
            let mut parser = SseParser::new();
            assert_eq!(
                parser.feed(stream).unwrap(),
                vec![event(None, None, "a", None)]
            );
            assert_eq!(parser.finish(), Ok(Some(event(None, None, data, None))));
            assert_eq!(parser.finish(), Ok(None), "nothing twice");
            assert_eq!(parser.next_event(), Ok(None));
        }
        // Nothing unfinished: nothing.
        let mut parser = SseParser::new();
        assert_eq!(parser.feed(b"data: a\n\n: comment\n").unwrap().len(), 1);
        assert_eq!(parser.finish(), Ok(None));
    }

    #[test]
    fn a_long_line_arriving_in_many_chunks_ends_where_its_line_end_is() {
        let value = "x".repeat(10_000);
        let stream = format!("data: {value}\r\ndata: y\n\n");
        let mut parser = SseParser::with_max_line_bytes(10_006);
        let mut events = Vec::new();
        for chunk in stream.as_bytes().chunks(97) {
            events.extend(parser.feed(chunk).unwrap());
        }
        assert_eq!(
            events,
            vec![event(None, None, &format!("{value}\ny"), None)]
        );

        // The limit still holds for a line that grows chunk by chunk.
        let mut parser = SseParser::with_max_line_bytes(1000);
        let too_long = (0..20).find_map(|_| parser.feed(&[b'x'; 97]).err());
        assert_eq!(too_long, Some(SseParseError::LineTooLong { limit: 1000 }));
    }

    #[test]
    fn events_come_out_one_at_a_time() {
        let mut parser = SseParser::new();
        parser.push(b"data: 1\n\ndata: 2\n\ndata: 3");
        assert_eq!(parser.next_event().unwrap().unwrap().data, "1");
        assert_eq!(parser.next_event().unwrap().unwrap().data, "2");
        assert_eq!(parser.next_event().unwrap(), None);
        parser.push(b"\n\n");
        assert_eq!(parser.next_event().unwrap().unwrap().data, "3");
    }
}
