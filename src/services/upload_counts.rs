//! What an upload's writes accepted so far: its answer's counts.

use serde::Serialize;

use super::{generation_input::Instruction, tasks::TaskWritten};
use crate::domain::{MESSAGE_METADATA_EVENT_TYPE, ToolEvent, ToolEventKind};

/// What an upload's writes accepted so far: the counts of its answer, its
/// log line and its span.
#[derive(Debug, Default, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Counted {
    /// Deltas accepted (a retried `seq` is not counted).
    pub deltas: u64,
    /// Characters of the answer's text they carried.
    pub chars: u64,
    /// Characters of the model's reasoning they carried (read from the
    /// providers' thinking, or NDJSON `{"reasoning"}` lines).
    pub reasoning_chars: u64,
    /// Tool calls the model made that were kept (`tool_call` events: an
    /// NDJSON `{"tool_call"}` line, or a provider's or the AI SDK's call).
    pub tool_calls: u64,
    /// Tools' answers kept (`tool_result` events).
    pub tool_results: u64,
    /// Sources, files, data and custom parts kept (`source`, `file`,
    /// `data_part` and `custom_part` events).
    pub parts: u64,
    /// Steps of the answer ended (`step_end` events: an AI SDK
    /// `finish-step`, an NDJSON `{"step_end"}` line, or the stream's end
    /// under `?ends=step`).
    pub step_ends: u64,
    /// Changes of the message's metadata kept (`message_metadata` events:
    /// an AI SDK part's `messageMetadata`, an NDJSON `{"message_metadata"}`
    /// line); metadata that changes nothing is not kept.
    pub message_metadata: u64,
}

impl Counted {
    /// The counts as the upload's span's fields.
    pub(super) fn record_in(&self, span: &tracing::Span) {
        span.record("deltas", self.deltas);
        span.record("chars", self.chars);
        span.record("reasoning_chars", self.reasoning_chars);
        span.record("tool_calls", self.tool_calls);
        span.record("tool_results", self.tool_results);
        span.record("parts", self.parts);
        span.record("step_ends", self.step_ends);
        span.record("message_metadata", self.message_metadata);
    }

    /// What one text write accepted.
    pub fn of_text(written: &TaskWritten) -> Self {
        Self {
            deltas: written.accepted as u64,
            chars: written.chars as u64,
            reasoning_chars: written.reasoning_chars as u64,
            ..Self::default()
        }
    }

    /// One tool event: a call, an answer, or neither (an approval asked).
    pub fn of_tool(kind: ToolEventKind) -> Self {
        let (calls, results) = match kind {
            ToolEventKind::Call => (1, 0),
            ToolEventKind::Output | ToolEventKind::Error | ToolEventKind::Denied => (0, 1),
            ToolEventKind::Approval => (0, 0),
        };
        Self {
            tool_calls: calls,
            tool_results: results,
            ..Self::default()
        }
    }
}

impl std::ops::AddAssign for Counted {
    fn add_assign(&mut self, more: Self) {
        self.deltas += more.deltas;
        self.chars += more.chars;
        self.reasoning_chars += more.reasoning_chars;
        self.tool_calls += more.tool_calls;
        self.tool_results += more.tool_results;
        self.parts += more.parts;
        self.step_ends += more.step_ends;
        self.message_metadata += more.message_metadata;
    }
}

/// What a change that is neither text nor a tool event counts (a part, a
/// step's end, a change of the message's metadata), and the kind
/// `sse_task_answer_parts_total` meters it under, if any.
pub(super) fn counted_change(instruction: &Instruction) -> (Counted, Option<&'static str>) {
    let one = Counted::default();
    match instruction {
        Instruction::Part(part) => (Counted { parts: 1, ..one }, Some(part.kind_label())),
        Instruction::MessageMetadata(_) => (
            Counted {
                message_metadata: 1,
                ..one
            },
            Some(MESSAGE_METADATA_EVENT_TYPE),
        ),
        Instruction::StepEnd { .. } => (
            Counted {
                step_ends: 1,
                ..one
            },
            None,
        ),
        _ => (one, None),
    }
}

/// The tool event `instruction` is, as counted and metered: none for a
/// preliminary answer (a tool's progress is no answer yet).
pub(super) fn counted_tool(instruction: &Instruction) -> Option<ToolEventKind> {
    match instruction {
        Instruction::Tool(ToolEvent::Result { flags, .. }) if flags.preliminary => None,
        Instruction::Tool(tool) => Some(ToolEventKind::of(tool)),
        _ => None,
    }
}
