//! Anthropic's Messages stream.

use serde_json::Value;

use super::{Instruction, delta_or_nothing};

/// An event of Anthropic's Messages stream, or `None` when `kind` is not
/// one (its `error` event is read with the other error objects).
pub(super) fn anthropic_event(kind: &str, value: &Value) -> Result<Option<Instruction>, String> {
    Ok(Some(match kind {
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
        "message_stop" => Instruction::Complete { result: None },
        "message_start" | "message_delta" | "content_block_stop" | "ping" => Instruction::Nothing,
        _ => return Ok(None),
    }))
}
