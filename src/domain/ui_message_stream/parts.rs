//! The bytes of the UI message stream's parts.

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use crate::domain::TextKind;

/// A part of a text or reasoning part (`text-start`, `reasoning-delta`,
/// …), written from borrowed fields: a token costs no JSON tree. The
/// fields are in the order a JSON object of them is written.
#[derive(Serialize)]
pub(super) struct TextPart<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<&'a str>,
    id: &'a str,
    #[serde(rename = "type")]
    part_type: &'static str,
}

/// Where a part is in its text or reasoning part.
#[derive(Clone, Copy)]
pub(super) enum Phase<'a> {
    Start,
    Delta(&'a str),
    End,
}

impl<'a> TextPart<'a> {
    /// The protocol's name for the parts of a kind of text.
    pub(super) fn name(kind: TextKind) -> &'static str {
        match kind {
            TextKind::Answer => "text",
            TextKind::Reasoning => "reasoning",
        }
    }

    pub(super) fn new(kind: TextKind, id: &'a str, phase: Phase<'a>) -> Self {
        let part_type = match (kind, phase) {
            (TextKind::Answer, Phase::Start) => "text-start",
            (TextKind::Answer, Phase::Delta(_)) => "text-delta",
            (TextKind::Answer, Phase::End) => "text-end",
            (TextKind::Reasoning, Phase::Start) => "reasoning-start",
            (TextKind::Reasoning, Phase::Delta(_)) => "reasoning-delta",
            (TextKind::Reasoning, Phase::End) => "reasoning-end",
        };
        let delta = match phase {
            Phase::Delta(delta) => Some(delta),
            Phase::Start | Phase::End => None,
        };
        Self {
            delta,
            id,
            part_type,
        }
    }
}

/// One part as one SSE event: compact JSON (no raw line break) on one
/// `data:` line.
pub(super) fn part(out: &mut BytesMut, part: &impl Serialize) {
    out.put_slice(b"data: ");
    serde_json::to_writer(out.writer(), part).expect("a JSON value serializes");
    out.put_slice(b"\n\n");
}

/// A part already encoded as JSON (one line: `serde_json` escapes line
/// breaks inside strings).
pub(super) fn encoded_part(out: &mut BytesMut, json: &str) {
    out.put_slice(b"data: ");
    out.put_slice(json.as_bytes());
    out.put_slice(b"\n\n");
}

/// Copies a task event's `provider_metadata` onto the part written for it,
/// as the SDK's `providerMetadata`.
pub(super) fn provider_metadata(data: &serde_json::Value, written: &mut serde_json::Value) {
    carry(data, "provider_metadata", written, "providerMetadata");
}

/// Copies a task event's `data[from]` onto the part written for it as
/// `to`, when it is there (the event's writer checked it).
pub(super) fn carry(
    data: &serde_json::Value,
    from: &str,
    written: &mut serde_json::Value,
    to: &str,
) {
    if let Some(said) = data.get(from).filter(|said| !said.is_null()) {
        written[to] = said.clone();
    }
}
