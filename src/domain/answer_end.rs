//! How a generated answer ended: why it stopped, in the AI SDK's words
//! (the one vocabulary shared across model providers), and the tokens it
//! took. A task keeps it in its `result` (`finish_reason`,
//! `provider_finish_reason`, `usage`), as an upload of a provider's stream
//! leaves it or as the producer wrote it; this module is the one place
//! that shape is written and read.

use serde_json::{Map, Value, json};

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
}

/// Tokens a provider counted for an answer; each count as it said it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

impl TokenUsage {
    /// The counts of `usage` under the names a provider gives them
    /// (input, output, total).
    pub fn named(usage: &Value, [input, output, total]: [&str; 3]) -> Option<Self> {
        let count = |name: &str| usage.get(name).and_then(Value::as_u64);
        Self {
            input_tokens: count(input),
            output_tokens: count(output),
            total_tokens: count(total),
        }
        .said()
    }

    /// These counts, `None` when there are none.
    pub fn said(self) -> Option<Self> {
        (self != Self::default()).then_some(self)
    }

    /// `later`'s counts over these (a provider repeats or completes them).
    pub fn merged(self, later: Self) -> Self {
        Self {
            input_tokens: later.input_tokens.or(self.input_tokens),
            output_tokens: later.output_tokens.or(self.output_tokens),
            total_tokens: later.total_tokens.or(self.total_tokens),
        }
    }

    const FIELDS: [&str; 3] = ["input_tokens", "output_tokens", "total_tokens"];

    fn counts(self) -> [Option<u64>; 3] {
        [self.input_tokens, self.output_tokens, self.total_tokens]
    }
}

/// How an answer ended, as a task's `result` keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerEnd {
    pub reason: Option<FinishReason>,
    /// The provider's own word for the reason.
    pub provider_reason: Option<String>,
    pub usage: Option<TokenUsage>,
}

impl AnswerEnd {
    /// As a task's `result`; `None` when it says nothing.
    pub fn to_result(&self) -> Option<Value> {
        let mut result = Map::new();
        if let Some(reason) = self.reason {
            result.insert("finish_reason".into(), json!(reason.label()));
        }
        if let Some(said) = &self.provider_reason {
            result.insert("provider_finish_reason".into(), json!(said));
        }
        if let Some(usage) = self.usage {
            let counts = TokenUsage::FIELDS
                .into_iter()
                .zip(usage.counts())
                .filter_map(|(name, count)| Some((name.to_owned(), json!(count?))))
                .collect();
            result.insert("usage".into(), Value::Object(counts));
        }
        (!result.is_empty()).then_some(Value::Object(result))
    }

    /// What a task's `result` says of its answer's end: all of it for a
    /// task a provider's stream completed, some or none of it for a
    /// result its producer wrote (a reason in other words is none).
    pub fn in_result(result: &Value) -> Self {
        Self {
            reason: result
                .get("finish_reason")
                .and_then(Value::as_str)
                .and_then(FinishReason::parse),
            provider_reason: result
                .get("provider_finish_reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
            usage: result
                .get("usage")
                .and_then(|usage| TokenUsage::named(usage, TokenUsage::FIELDS)),
        }
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
            AnswerEnd::in_result(&json!({ "finish_reason": "content-filter" })).reason,
            Some(FinishReason::ContentFilter)
        );
        for other in [
            json!({ "finish_reason": "content_filter" }),
            json!({ "finish_reason": "STOP" }),
            json!({ "finish_reason": 1 }),
            json!("stop"),
            json!(null),
        ] {
            assert_eq!(AnswerEnd::in_result(&other).reason, None, "{other}");
        }
    }

    #[test]
    fn an_end_is_read_back_from_the_result_it_makes() {
        let end = AnswerEnd {
            reason: Some(FinishReason::Length),
            provider_reason: Some("max_tokens".into()),
            usage: Some(TokenUsage {
                input_tokens: Some(12),
                output_tokens: Some(1024),
                total_tokens: None,
            }),
        };
        let result = end.to_result().expect("a result");

        assert_eq!(
            result,
            json!({
                "finish_reason": "length",
                "provider_finish_reason": "max_tokens",
                "usage": { "input_tokens": 12, "output_tokens": 1024 },
            })
        );
        assert_eq!(AnswerEnd::in_result(&result), end);
        assert_eq!(AnswerEnd::default().to_result(), None);
        let written = json!({ "usage": { "input_tokens": "x", "output_tokens": 3 } });
        assert_eq!(
            AnswerEnd::in_result(&written)
                .usage
                .and_then(|u| u.input_tokens),
            None,
            "a producer's count that is no count is none"
        );
    }
}
