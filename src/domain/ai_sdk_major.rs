//! The major version of the `ai` package a viewer of a UI message stream
//! says it reads with (`?ai_sdk=7`): which parts and fields its schema
//! takes.

use super::FinishReason;

/// The major version of the `ai` package a viewer reads its stream with:
/// a part carries a field only when that version knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AiSdkMajor(u16);

impl AiSdkMajor {
    /// The oldest version whose protocol the stream speaks (v5's
    /// `x-vercel-ai-ui-message-stream: v1`): what a viewer that says
    /// nothing gets.
    pub const OLDEST: Self = Self(5);

    /// A major version as a client gives it (`7`): 5 or later.
    pub fn parse(raw: &str) -> Option<Self> {
        let major: u16 = raw.trim().parse().ok()?;
        (major >= Self::OLDEST.0).then_some(Self(major))
    }

    /// Whether the `finish` part may say why the answer stopped itself
    /// (`finishReason` came with v6), as `reason`: v6's schema knows no
    /// `interrupted` (v7's) and refuses the part.
    pub(super) fn has_finish_reason(self, reason: FinishReason) -> bool {
        match reason {
            FinishReason::Interrupted => self.0 >= 7,
            _ => self.0 >= 6,
        }
    }

    /// Whether the stream may carry a tool's approval parts
    /// (`tool-approval-request`, `tool-output-denied`: v6's
    /// human-in-the-loop tools; v5's schema refuses them).
    pub(super) fn has_tool_approvals(self) -> bool {
        self.0 >= 6
    }

    /// Whether a tool's answer may say what its provider said of it
    /// (`providerMetadata` on `tool-output-available` and
    /// `tool-output-error`; v5.0's strict schema refuses it there).
    pub(super) fn has_result_provider_metadata(self) -> bool {
        self.0 >= 6
    }

    /// Whether tool parts may say what the app said of the tool (`title`
    /// and `toolMetadata`, which v6's schema has and v5.0's strict one
    /// refuses).
    pub(super) fn has_tool_labels(self) -> bool {
        self.0 >= 6
    }

    /// Whether the stream may say how an approval was decided
    /// (`tool-approval-response`: a part of v7's stream; v6's schema
    /// refuses it, and knows the name only as a model message's part).
    pub(super) fn has_approval_responses(self) -> bool {
        self.0 >= 7
    }

    /// Whether the stream may carry what v7 added to an answer's parts: a
    /// text part's `citations` on its end, `reasoning-file`, `custom` and
    /// `steering-message` parts (kinds and a field earlier schemas refuse).
    pub(super) fn has_v7_answer_parts(self) -> bool {
        self.0 >= 7
    }
}
