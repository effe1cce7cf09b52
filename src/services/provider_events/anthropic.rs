//! Anthropic's Messages stream.

use serde_json::Value;

use super::{Dialect, EndNote, EventRead, Instruction, ToolPiece, delta_or_nothing};
use crate::domain::{FinishReason, TokenUsage};

/// An event of Anthropic's Messages stream, or `None` when `kind` is not
/// one (its `error` event is read with the other error objects). The
/// tokens come in `message_start` (input) and `message_delta` (output, and
/// the `stop_reason`), before `message_stop` ends the answer.
pub(super) fn anthropic_event(kind: &str, value: &Value) -> Result<Option<EventRead>, String> {
    let usage = |at: &str| value.pointer(at).and_then(anthropic_usage);
    let mut note = None;
    let mut tools = Vec::new();
    // The content block an event is of: a tool call's pieces are told
    // apart by it.
    let block_index = || value.get("index").and_then(Value::as_u64).unwrap_or(0);
    let instruction = match kind {
        "content_block_delta" => match value.pointer("/delta/type").and_then(Value::as_str) {
            Some("text_delta") => Instruction::answer(
                value
                    .pointer("/delta/text")
                    .and_then(Value::as_str)
                    .ok_or("a text_delta needs delta.text as a string")?,
            ),
            Some("thinking_delta") => Instruction::reasoning(
                value
                    .pointer("/delta/thinking")
                    .and_then(Value::as_str)
                    .ok_or("a thinking_delta needs delta.thinking as a string")?,
            ),
            Some("input_json_delta") => {
                let fragment = value
                    .pointer("/delta/partial_json")
                    .and_then(Value::as_str)
                    .ok_or("an input_json_delta needs delta.partial_json as a string")?;
                tools.push(ToolPiece::Input {
                    index: block_index(),
                    fragment: fragment.to_owned(),
                });
                Instruction::Nothing
            }
            // the thinking's signature, citations
            _ => Instruction::Nothing,
        },
        "content_block_start" => {
            let block = value.get("content_block");
            let kind = block
                .and_then(|block| block.get("type"))
                .and_then(Value::as_str);
            let field = |name: &str| match block.and_then(|block| block.get(name)) {
                Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
                _ => None,
            };
            match kind {
                Some("text") => delta_or_nothing(field("text").unwrap_or_default()),
                Some("thinking") => {
                    field("thinking").map_or(Instruction::Nothing, Instruction::reasoning)
                }
                // A call of a tool the caller runs (a `server_tool_use`
                // is run by Anthropic itself).
                Some("tool_use") => {
                    // Its input comes in deltas; a gateway replaying a
                    // finished message may give it whole here instead.
                    let given = block
                        .and_then(|block| block.get("input"))
                        .filter(|input| input.as_object().is_none_or(|input| !input.is_empty()));
                    tools.push(ToolPiece::Begin {
                        index: block_index(),
                        id: field("id"),
                        name: field("name"),
                        input: given.cloned(),
                    });
                    Instruction::Nothing
                }
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
        "content_block_stop" => {
            tools.push(ToolPiece::End {
                index: Some(block_index()),
            });
            Instruction::Nothing
        }
        "ping" => Instruction::Nothing,
        _ => return Ok(None),
    };
    Ok(Some(
        EventRead::one(instruction, Some(Dialect::Anthropic))
            .noting(note)
            .with_tools(tools),
    ))
}

/// An Anthropic `stop_reason` in the AI SDK's words.
fn stop_reason(said: &str) -> FinishReason {
    match said {
        // `pause_turn`: a long turn paused, to be sent back as it is.
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// Anthropic's counts, the input as every other provider counts it: with
/// the tokens read from or written to the prompt cache, which Anthropic
/// counts apart (OpenAI's `prompt_tokens` include its cached tokens).
fn anthropic_usage(usage: &Value) -> Option<TokenUsage> {
    let count = |name: &str| usage.get(name).and_then(Value::as_u64);
    let cached = ["cache_creation_input_tokens", "cache_read_input_tokens"]
        .map(|name| count(name).unwrap_or(0));
    TokenUsage {
        input_tokens: count("input_tokens").map(|input| input + cached[0] + cached[1]),
        output_tokens: count("output_tokens"),
        total_tokens: None,
    }
    .said()
}
