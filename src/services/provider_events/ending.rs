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

use serde_json::Value;

use super::Instruction;
use crate::domain::{AnswerEnd, FinishReason, TokenUsage};

/// What one event says of the answer's end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndNote {
    /// The reason, and the provider's own word for it. Once said, the
    /// answer is whole when the body ends, though no event ends it (an
    /// OpenAI Chat Completions stream written as JSON lines has no
    /// `[DONE]`; a body may break just before its end marker).
    pub finish: Option<(FinishReason, String)>,
    pub usage: Option<TokenUsage>,
    /// The answer asks for a tool to be run, which some providers tell
    /// only by the call itself, their reason staying "stop" (Gemini, the
    /// Responses API).
    pub asks_for_tools: bool,
    /// The answer is a refusal, which OpenAI tells only by its text.
    pub refuses: bool,
}

impl EndNote {
    pub fn usage(usage: Option<TokenUsage>) -> Option<Self> {
        usage.map(|usage| Self {
            usage: Some(usage),
            ..Self::default()
        })
    }

    pub fn finish(reason: FinishReason, said: &str, usage: Option<TokenUsage>) -> Self {
        Self {
            finish: Some((reason, said.to_owned())),
            usage,
            ..Self::default()
        }
    }

    /// `note`, saying besides that the answer asks for tools when
    /// `asks`.
    pub fn asking_for_tools(note: Option<Self>, asks: bool) -> Option<Self> {
        if !asks {
            return note;
        }
        Some(Self {
            asks_for_tools: true,
            ..note.unwrap_or_default()
        })
    }

    /// `note`, saying besides that the answer is a refusal when `refuses`.
    pub fn refusing(note: Option<Self>, refuses: bool) -> Option<Self> {
        if !refuses {
            return note;
        }
        Some(Self {
            refuses: true,
            ..note.unwrap_or_default()
        })
    }
}

/// What the events of one body said of its end, gathered.
#[derive(Debug, Clone, Default)]
pub struct Ending {
    finish: Option<(FinishReason, String)>,
    usage: Option<TokenUsage>,
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
        if let Some(later) = note.usage {
            self.usage = Some(self.usage.unwrap_or_default().merged(later));
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
        let (reason, said) = self.finish.clone().unzip();
        // A stop is what the answer was: as the AI SDK reads the same
        // stream.
        let reason = reason.map(|reason| match reason {
            FinishReason::Stop if self.refuses => FinishReason::ContentFilter,
            FinishReason::Stop if self.asks_for_tools => FinishReason::ToolCalls,
            reason => reason,
        });
        AnswerEnd {
            reason,
            provider_reason: said,
            usage: self.usage,
        }
        .to_result()
    }
}
