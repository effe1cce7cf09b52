//! Gemini's `streamGenerateContent?alt=sse` chunks.

use serde_json::Value;

use super::{Dialect, EndNote, EventRead, Instruction, Piece, ToolPiece};
use crate::domain::{FinishReason, TextKind, TokenUsage, ToolEvent};
use crate::services::tasks::Delta;

/// A chunk of Gemini's `streamGenerateContent`: the first candidate's
/// thoughts and text, then its end when the chunk carries a `finishReason` (Gemini sends
/// no end marker of its own).
pub(super) fn gemini_chunk(value: &Value) -> Result<EventRead, String> {
    let usage = value.get("usageMetadata").and_then(gemini_usage);
    let candidates = match value.get("candidates") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(candidates)) => candidates.as_slice(),
        Some(_) => return Err("candidates must be an array".into()),
    };
    let first = candidates.iter().find(|candidate| {
        candidate
            .get("index")
            .is_none_or(|index| index.as_u64() == Some(0))
    });
    let Some(candidate) = first else {
        let blocked = value
            .pointer("/promptFeedback/blockReason")
            .and_then(Value::as_str);
        let instruction = match blocked {
            Some(reason) => Instruction::Fail {
                error: format!("the model provider blocked the prompt: {reason}"),
            },
            None => Instruction::Nothing,
        };
        return Ok(EventRead::one(instruction, Some(Dialect::Gemini)).noting(EndNote::usage(usage)));
    };
    let (mut text, mut reasoning) = (String::new(), String::new());
    // From the first call on, the parts in their order: text after a call
    // comes after it.
    let mut after_call: Vec<Piece> = Vec::new();
    let mut calls = 0;
    let parts = match candidate.pointer("/content/parts") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(parts)) => parts.as_slice(),
        Some(_) => return Err("candidates[0].content.parts must be an array".into()),
    };
    for (index, part) in parts.iter().enumerate() {
        // A thought part's text is the model's thinking (its summary).
        let thought = part.get("thought").and_then(Value::as_bool) == Some(true);
        if let Some(call) = part.get("functionCall").filter(|call| !call.is_null()) {
            after_call.push(Piece::Tool(function_call(call, index)?));
            calls += 1;
        }
        let kind = if thought {
            TextKind::Reasoning
        } else {
            TextKind::Answer
        };
        match part.get("text") {
            None | Some(Value::Null) => {}
            Some(Value::String(part_text)) if calls > 0 => {
                text_after_call(&mut after_call, kind, part_text)
            }
            Some(Value::String(part_text)) if thought => reasoning.push_str(part_text),
            Some(Value::String(part_text)) => text.push_str(part_text),
            Some(_) => {
                return Err(format!(
                    "candidates[0].content.parts[{index}].text must be a string"
                ));
            }
        }
    }
    let (end, note) = match candidate.get("finishReason").and_then(Value::as_str) {
        Some(said) => {
            let note = EndNote::finish(finish_reason(said), said, usage);
            // A reason left unspecified ends nothing by itself; the body's
            // end does.
            let ends = said != "FINISH_REASON_UNSPECIFIED";
            (
                ends.then_some(Instruction::Complete { result: None }),
                Some(note),
            )
        }
        None => (None, EndNote::usage(usage)),
    };
    let note = EndNote::asking_for_tools(note, calls > 0);
    Ok(EventRead::text_then(reasoning, text, end, Dialect::Gemini)
        .noting(note)
        .with_pieces(after_call))
}

/// Text of `kind` after a call: onto the text just before it if of the
/// same kind, else a piece of its own.
fn text_after_call(pieces: &mut Vec<Piece>, kind: TextKind, text: &str) {
    if let Some(Piece::Text(Instruction::Delta(delta))) = pieces.last_mut()
        && delta.kind == kind
    {
        delta.text.push_str(text);
        return;
    }
    pieces.push(Piece::Text(Instruction::Delta(Delta {
        text: text.to_owned(),
        seq: None,
        kind,
    })));
}

/// A part's `functionCall` (`name`, `args`, and an `id` only some
/// versions give).
fn function_call(call: &Value, index: usize) -> Result<ToolPiece, String> {
    let at = format!("candidates[0].content.parts[{index}].functionCall");
    let name = call
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at} needs name as a string"))?;
    let input = match call.get("args") {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(args) => args.clone(),
    };
    Ok(match call.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => ToolPiece::Whole(ToolEvent::call(id, name, input, &at)?),
        _ => ToolPiece::WithoutId {
            name: name.to_owned(),
            input,
        },
    })
}

/// A Gemini `finishReason` in the AI SDK's words.
fn finish_reason(said: &str) -> FinishReason {
    match said {
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        "MALFORMED_FUNCTION_CALL" => FinishReason::Error,
        _ => FinishReason::Other,
    }
}

/// Gemini's counts, the output as every other provider counts it: with
/// the thinking tokens, which Gemini counts apart (`thoughtsTokenCount`;
/// OpenAI's `completion_tokens` and Anthropic's `output_tokens` include
/// their reasoning), and billed as output.
fn gemini_usage(usage: &Value) -> Option<TokenUsage> {
    let count = |name: &str| usage.get(name).and_then(Value::as_u64);
    let thoughts = count("thoughtsTokenCount");
    TokenUsage {
        input_tokens: count("promptTokenCount"),
        output_tokens: match (count("candidatesTokenCount"), thoughts) {
            (None, None) => None,
            (answer, thoughts) => Some(answer.unwrap_or(0) + thoughts.unwrap_or(0)),
        },
        total_tokens: count("totalTokenCount"),
    }
    .said()
}
