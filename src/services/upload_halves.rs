//! Characters split between two lines of an upload, across lines: the
//! first half of one waits, beside the kind of text it was cut from, for
//! the next line's text of the same kind (`surrogate_pairs` rewrites the
//! line that completes it). The reasoning's half never completes the
//! answer's, nor stands in it as U+FFFD.

use super::{
    generation_input::Instruction, provider_events::EventRead,
    surrogate_pairs::pair_split_characters,
};
use crate::domain::TextKind;

/// The first half of a character, cut off the end of a line's text of
/// `kind`: it completes only text of the same kind.
#[derive(Debug, Clone, Copy)]
pub(super) struct WaitingHalf {
    high: u16,
    pub(super) kind: TextKind,
}

/// `read` of a JSON `line`; a line refused for half a character (a high
/// or low surrogate escape alone) is read again with the halves joined
/// across lines, never across kinds of text (the reasoning's half does not
/// complete the answer's). Beside it, when a waiting half found no
/// partner, the kind of the U+FFFD that goes before the line. A line with
/// no text (progress, a provider's ping) leaves the half waiting.
pub(super) fn split_characters_joined(
    half: &mut Option<WaitingHalf>,
    line: &str,
    read: impl Fn(&str) -> Result<EventRead, String>,
) -> Result<(EventRead, Option<TextKind>), String> {
    let reason = match read(line) {
        Ok(parsed) if carries_no_text(&parsed) => return Ok((parsed, None)),
        Ok(parsed) => return Ok((parsed, half.take().map(|half| half.kind))),
        Err(reason) => reason,
    };
    let held = *half;
    let joined = pair_split_characters(line, held.map(|half| half.high));
    let Some(rewritten) = joined.line else {
        return Err(reason);
    };
    let parsed = read(&rewritten)?;
    match held {
        Some(held) if held.kind != text_kinds(&parsed).0 => {
            // Each half stands alone: the held one in its own kind.
            let alone = pair_split_characters(line, None);
            let parsed = read(alone.line.as_deref().unwrap_or(line))?;
            *half = waiting(alone.waiting, &parsed);
            Ok((parsed, Some(held.kind)))
        }
        held => {
            *half = waiting(joined.waiting, &parsed);
            let dropped = joined
                .dropped
                .then(|| held.map_or(text_kinds(&parsed).0, |h| h.kind));
            Ok((parsed, dropped))
        }
    }
}

/// The half a line left waiting, of the kind its last text is.
fn waiting(high: Option<u16>, parsed: &EventRead) -> Option<WaitingHalf> {
    high.map(|high| WaitingHalf {
        high,
        kind: text_kinds(parsed).1,
    })
}

/// The kinds of a read's first and last text (the answer's when it has
/// none): a chunk's reasoning comes before its answer.
fn text_kinds(read: &EventRead) -> (TextKind, TextKind) {
    let own = match &read.instruction {
        Instruction::Delta(delta) => Some(delta.kind),
        _ => None,
    };
    let first = read.reasoning.as_ref().map(|_| TextKind::Reasoning).or(own);
    let last = own.or(read.reasoning.as_ref().map(|_| TextKind::Reasoning));
    (first.unwrap_or_default(), last.unwrap_or_default())
}

/// A read with no text that ends nothing: a half may wait across it.
fn carries_no_text(read: &EventRead) -> bool {
    read.reasoning.is_none()
        && read.then.is_none()
        && read.pieces.is_empty()
        && matches!(
            read.instruction,
            Instruction::Progress { .. } | Instruction::MessageMetadata(_) | Instruction::Nothing
        )
}

/// What half a character with no partner stands for, in its kind of text.
pub(super) fn replacement_character(kind: TextKind) -> Instruction {
    let fffd = char::REPLACEMENT_CHARACTER;
    match kind {
        TextKind::Answer => Instruction::answer(fffd),
        TextKind::Reasoning => Instruction::reasoning(fffd),
    }
}
