//! What an upload's event-stream body is, told by its first line: events,
//! or JSON where events were expected (nearly always a provider's error
//! answer piped in unchecked, read whole), or neither (a proxy's error
//! page), refused at once.

use serde::de::IgnoredAny;
use serde_json::Value;

use super::{
    super::domain::extend_held, generation_input::Instruction, provider_events::provider_error,
    surrogate_pairs::pair_split_characters, upload_error::ReadError,
};

/// What an event-stream body turned out to be, from its first byte that
/// is not white space.
pub(super) enum Shape {
    /// Not told yet: the body so far, held until its first line is whole.
    Unknown(Vec<u8>),
    Events,
    /// JSON where events were expected.
    Json(JsonBody),
}

/// JSON where events were expected, kept whole to be read at its end (a
/// provider's error answer fails the task with its message), except JSON
/// lines: a first line that is JSON on its own with more after it is
/// refused at once, so that a producer piping an SDK's JSON lines in as
/// an event stream learns of it before paying for a whole answer.
#[derive(Debug, Default)]
pub(super) struct JsonBody {
    bytes: Vec<u8>,
    first_line: FirstLine,
}

#[derive(Debug, Default, Clone, Copy)]
enum FirstLine {
    /// Not whole yet.
    #[default]
    Open,
    /// JSON on its own, ending at this offset.
    Json { end: usize },
    /// Not JSON alone (a pretty-printed document's `{`).
    Part,
}

impl JsonBody {
    pub(super) fn push(&mut self, chunk: &[u8]) -> Result<(), ReadError> {
        let before = self.bytes.len();
        extend_held(&mut self.bytes, chunk);
        if let FirstLine::Open = self.first_line
            && let Some(at) = memchr::memchr(b'\n', &self.bytes[before..])
        {
            let end = before + at;
            let line = std::str::from_utf8(&self.bytes[..end]).unwrap_or_default();
            self.first_line = if is_json_line(line.trim()) {
                FirstLine::Json { end }
            } else {
                FirstLine::Part
            };
        }
        if let FirstLine::Json { end } = self.first_line
            && self.bytes[before.max(end + 1)..]
                .iter()
                .any(|byte| !byte.is_ascii_whitespace())
        {
            return Err(not_a_stream(JSON_LINES));
        }
        Ok(())
    }

    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn held_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// The whole body, read at its end.
    pub(super) fn answer(&self) -> Result<Instruction, ReadError> {
        json_answer(&self.bytes)
    }
}

const JSON_LINES: &str =
    "JSON lines (an SDK's toReadableStream()?): send them as application/x-ndjson";

/// What an event-stream body is, told by `head` (the body so far): JSON
/// (its first byte that is not white space or a byte order mark opens an
/// object or an array), or events (its first line is a comment or a field
/// of the format: `data`, `event`, `id`, `retry`), with where what is kept
/// of it starts; `None` until its first line is whole. Anything else (a
/// proxy's error page, a plain-text error) is refused at its first line.
pub(super) fn shape_of(head: &[u8], last: bool) -> Result<Option<(Shape, usize)>, ReadError> {
    let blank = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\r' | b'\n' | 0xEF | 0xBB | 0xBF);
    let Some(from) = head.iter().position(|byte| !blank(byte)) else {
        return Ok(last.then_some((Shape::Events, 0)));
    };
    if matches!(head[from], b'{' | b'[') {
        return Ok(Some((Shape::Json(JsonBody::default()), from)));
    }
    // The first line as the event-stream parser reads it: spaces before a
    // field name make another field.
    let break_or_mark = |byte: &u8| matches!(byte, b'\r' | b'\n' | 0xEF | 0xBB | 0xBF);
    let from = head
        .iter()
        .position(|byte| !break_or_mark(byte))
        .unwrap_or(from);
    let rest = &head[from..];
    let Some(end) = memchr::memchr2(b'\n', b'\r', rest).or(last.then_some(rest.len())) else {
        return Ok(None);
    };
    let line = &rest[..end];
    let field = line.split(|byte| *byte == b':').next().unwrap_or_default();
    if line.starts_with(b":") || [&b"data"[..], b"event", b"id", b"retry"].contains(&field) {
        return Ok(Some((Shape::Events, 0)));
    }
    let begins = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
    Err(ReadError::Malformed {
        line: 1 + memchr::memchr_iter(b'\n', &head[..from]).count() as u64,
        reason: format!(
            "the body is not an event stream: it begins {begins:?} (an error from the model provider or a proxy? check the provider's answer before piping it in)"
        ),
    })
}

/// A JSON body sent as an event stream, read whole: a provider's error
/// answer fails the task with its message; JSON lines or another document
/// are refused, saying what to send instead.
fn json_answer(document: &[u8]) -> Result<Instruction, ReadError> {
    let text = std::str::from_utf8(document).map_err(|_| not_a_stream("JSON that is not UTF-8"))?;
    match serde_json::from_str::<Value>(text) {
        // One line of an SDK's JSON lines reads as one document.
        Ok(value) => provider_error(&value).ok_or_else(|| {
            not_a_stream("a JSON document (a JSON line? send JSON lines as application/x-ndjson)")
        }),
        Err(_)
            if text
                .lines()
                .all(|line| line.trim().is_empty() || is_json_line(line)) =>
        {
            Err(not_a_stream(JSON_LINES))
        }
        Err(_) => Err(not_a_stream("JSON that does not parse")),
    }
}

/// A JSON line, also one whose text a JavaScript producer cut between the
/// halves of a character (`"\ud83d"`): JSON to `JSON.parse`, not to serde.
fn is_json_line(line: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(line).is_ok()
        || pair_split_characters(line, None)
            .line
            .is_some_and(|joined| serde_json::from_str::<IgnoredAny>(&joined).is_ok())
}

fn not_a_stream(what: &str) -> ReadError {
    ReadError::Malformed {
        line: 1,
        reason: format!("the body is not an event stream but {what}"),
    }
}
