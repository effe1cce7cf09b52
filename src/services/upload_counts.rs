//! What an upload's writes accepted so far: its answer's counts.

use super::generation_input::Instruction;
use crate::domain::{ToolEvent, ToolEventKind};

/// What an upload's writes accepted so far.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counted {
    pub deltas: u64,
    pub chars: u64,
    pub reasoning_chars: u64,
    pub tool_calls: u64,
    pub tool_results: u64,
    pub step_ends: u64,
}

impl Counted {
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
        self.step_ends += more.step_ends;
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
