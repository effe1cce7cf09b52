//! Why a generated answer stopped, in the AI SDK's words: the one
//! vocabulary shared across model providers, and the only one the UI
//! message stream's `finish` part accepts (`useChat` hands it to
//! `onFinish`). A task keeps it in its `result` (`finish_reason`), as an
//! upload of a provider's stream leaves it or as the producer wrote it.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
    ToolCalls,
    Error,
    Interrupted,
    Other,
}

impl FinishReason {
    pub const ALL: [Self; 7] = [
        Self::Stop,
        Self::Length,
        Self::ContentFilter,
        Self::ToolCalls,
        Self::Error,
        Self::Interrupted,
        Self::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ContentFilter => "content-filter",
            Self::ToolCalls => "tool-calls",
            Self::Error => "error",
            Self::Interrupted => "interrupted",
            Self::Other => "other",
        }
    }

    /// A reason in the AI SDK's words; `None` for any other word.
    pub fn parse(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.label() == label)
    }

    /// The reason a task's `result` holds (`{"finish_reason": ...}`), if it
    /// holds one in these words.
    pub fn in_result(result: &Value) -> Option<Self> {
        result
            .get("finish_reason")
            .and_then(Value::as_str)
            .and_then(Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_reason_is_read_back_in_its_own_words_and_only_those() {
        for reason in FinishReason::ALL {
            assert_eq!(FinishReason::parse(reason.label()), Some(reason));
        }
        assert_eq!(
            FinishReason::in_result(&json!({ "finish_reason": "content-filter" })),
            Some(FinishReason::ContentFilter)
        );
        for other in [
            json!({ "finish_reason": "content_filter" }),
            json!({ "finish_reason": "STOP" }),
            json!({ "finish_reason": 1 }),
            json!("stop"),
            json!(null),
        ] {
            assert_eq!(FinishReason::in_result(&other), None, "{other}");
        }
    }
}
