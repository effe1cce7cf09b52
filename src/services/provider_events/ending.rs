//! How a provider's answer ended: why it stopped and the tokens it counted.
//!
//! A producer that pipes its provider's stream in no longer sees that
//! stream's end, yet it is what a product needs: an answer cut off at the
//! token limit or by a content filter is shown as such, and tokens are
//! billed. The broker keeps both as the task's `result` (`finish_reason`,
//! `provider_finish_reason`, `usage`), so the upload's answer hands them
//! back to the producer and viewers read them off `complete` (the UI
//! message stream's `finish` part carries the reason as the message's
//! metadata).
//!
//! The reason is said in the AI SDK's words (see `FinishReason`), as the
//! AI SDK reads the same stream, beside the provider's own. Providers say
//! these things over several events (Anthropic's `message_delta` before
//! its `message_stop`; OpenAI's usage chunk after the chunk with the
//! finish reason; a Gemini function call chunks before its `STOP`), so
//! they are gathered over the body.

use serde_json::{Map, Value, json};

use super::Instruction;
use crate::domain::FinishReason;

/// Tokens a provider counted for the answer; each count as it said it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

impl Usage {
    /// The counts of `usage` under the names a provider gives them
    /// (input, output, total); `None` when it holds none of them.
    pub fn read(usage: &Value, names: [&str; 3]) -> Option<Self> {
        let count = |name: &str| usage.get(name).and_then(Value::as_u64);
        let read = Self {
            input_tokens: count(names[0]),
            output_tokens: count(names[1]),
            total_tokens: count(names[2]),
        };
        (read != Self::default()).then_some(read)
    }

    /// `later`'s counts over these (a provider repeats or completes them).
    fn merge(&mut self, later: Self) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.total_tokens = later.total_tokens.or(self.total_tokens);
    }
}

/// What one event says of the answer's end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndNote {
    /// The reason, and the provider's own word for it. Once said, the
    /// answer is whole when the body ends, though no event ends it (an
    /// OpenAI Chat Completions stream written as JSON lines has no
    /// `[DONE]`; a body may break just before its end marker).
    pub finish: Option<(FinishReason, String)>,
    pub usage: Option<Usage>,
    /// The answer asks for a tool to be run, which some providers tell
    /// only by the call itself, their reason staying "stop" (Gemini, the
    /// Responses API).
    pub asks_for_tools: bool,
    /// The answer is a refusal, which OpenAI tells only by its text.
    pub refuses: bool,
}

impl EndNote {
    pub fn usage(usage: Option<Usage>) -> Option<Self> {
        usage.map(|usage| Self {
            usage: Some(usage),
            ..Self::default()
        })
    }

    pub fn finish(reason: FinishReason, said: &str, usage: Option<Usage>) -> Self {
        Self {
            finish: Some((reason, said.to_owned())),
            usage,
            ..Self::default()
        }
    }

    /// `note`, or an empty one, saying the answer asks for tools.
    pub fn asking_for_tools(note: Option<Self>) -> Option<Self> {
        Some(Self {
            asks_for_tools: true,
            ..note.unwrap_or_default()
        })
    }

    /// `note`, or an empty one, saying the answer is a refusal.
    pub fn refusing(note: Option<Self>) -> Option<Self> {
        Some(Self {
            refuses: true,
            ..note.unwrap_or_default()
        })
    }
}

/// What the events of one body said of its end, gathered.
#[derive(Debug, Default)]
pub struct Ending {
    finish: Option<(FinishReason, String)>,
    usage: Option<Usage>,
    asks_for_tools: bool,
    refuses: bool,
    /// A finish was said, and nothing has ended the task since.
    whole_at_body_end: bool,
}

impl Ending {
    pub fn note(&mut self, note: EndNote) {
        if note.finish.is_some() {
            self.finish = note.finish;
            self.whole_at_body_end = true;
        }
        if let Some(usage) = note.usage {
            self.usage.get_or_insert_default().merge(usage);
        }
        self.asks_for_tools |= note.asks_for_tools;
        self.refuses |= note.refuses;
    }

    /// `instruction` as the body's end so far makes it: a completion
    /// carries what is known of the end as its result (unless the producer
    /// gave one), and once anything ends the task the body's end owes
    /// nothing.
    pub fn applied(&mut self, instruction: Instruction) -> Instruction {
        match instruction {
            Instruction::Complete { result: None } => {
                self.whole_at_body_end = false;
                Instruction::Complete {
                    result: self.result(),
                }
            }
            Instruction::Complete { .. } | Instruction::Fail { .. } | Instruction::Cancel => {
                self.whole_at_body_end = false;
                instruction
            }
            other => other,
        }
    }

    /// The completion owed by a body that ends now (or breaks, or is cut
    /// by a refused line) after a note said its answer was whole.
    pub fn at_body_end(&mut self) -> Option<Instruction> {
        std::mem::take(&mut self.whole_at_body_end).then(|| Instruction::Complete {
            result: self.result(),
        })
    }

    /// The task's `result`: what is known of the end, `None` if nothing.
    pub fn result(&self) -> Option<Value> {
        let mut result = Map::new();
        if let Some((reason, said)) = &self.finish {
            // A stop is what the answer was: as the AI SDK reads the same
            // stream.
            let reason = match reason {
                FinishReason::Stop if self.refuses => FinishReason::ContentFilter,
                FinishReason::Stop if self.asks_for_tools => FinishReason::ToolCalls,
                reason => *reason,
            };
            result.insert("finish_reason".into(), json!(reason.label()));
            result.insert("provider_finish_reason".into(), json!(said));
        }
        if let Some(usage) = self.usage {
            let mut counts = Map::new();
            for (name, count) in [
                ("input_tokens", usage.input_tokens),
                ("output_tokens", usage.output_tokens),
                ("total_tokens", usage.total_tokens),
            ] {
                if let Some(count) = count {
                    counts.insert(name.into(), json!(count));
                }
            }
            result.insert("usage".into(), Value::Object(counts));
        }
        (!result.is_empty()).then_some(Value::Object(result))
    }
}
