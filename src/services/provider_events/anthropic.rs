//! Anthropic's Messages stream.

use serde_json::Value;

use super::{Dialect, EndNote, EventRead, Instruction, Usage, delta_or_nothing};
use crate::domain::FinishReason;

/// An event of Anthropic's Messages stream, or `None` when `kind` is not
/// one (its `error` event is read with the other error objects). The
/// tokens come in `message_start` (input) and `message_delta` (output, and
/// the `stop_reason`), before `message_stop` ends the answer.
pub(super) fn anthropic_event(kind: &str, value: &Value) -> Result<Option<EventRead>, String> {
    let usage = |at: &str| {
        value
            .pointer(at)
            .and_then(|usage| Usage::read(usage, ["input_tokens", "output_tokens", "total"]))
    };
    let mut note = None;
    let instruction = match kind {
        "content_block_delta" => match value.pointer("/delta/type").and_then(Value::as_str) {
            Some("text_delta") => Instruction::Delta {
                text: value
                    .pointer("/delta/text")
                    .and_then(Value::as_str)
                    .ok_or("a text_delta needs delta.text as a string")?
                    .to_owned(),
                seq: None,
            },
            // thinking, its signature, a tool's input, citations
            _ => Instruction::Nothing,
        },
        "content_block_start" => {
            let block = value.get("content_block");
            let is_text = block
                .and_then(|block| block.get("type"))
                .and_then(Value::as_str)
                == Some("text");
            match block.and_then(|block| block.get("text")) {
                Some(Value::String(text)) if is_text => delta_or_nothing(text.clone()),
                _ => Instruction::Nothing,
            }
        }
        "message_start" => {
            note = EndNote::usage(usage("/message/usage"));
            Instruction::Nothing
        }
        "message_delta" => {
            note = match value.pointer("/delta/stop_reason").and_then(Value::as_str) {
                Some(said) => Some(EndNote::finish(stop_reason(said), said, usage("/usage"))),
                None => EndNote::usage(usage("/usage")),
            };
            Instruction::Nothing
        }
        "message_stop" => Instruction::Complete { result: None },
        "content_block_stop" | "ping" => Instruction::Nothing,
        _ => return Ok(None),
    };
    Ok(Some(
        EventRead::one(instruction, Some(Dialect::Anthropic)).noting(note),
    ))
}

/// An Anthropic `stop_reason` in the AI SDK's words.
fn stop_reason(said: &str) -> FinishReason {
    match said {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}
