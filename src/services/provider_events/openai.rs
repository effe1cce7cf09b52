//! OpenAI's two streams: Chat Completions chunks (and the many APIs that
//! copy them) and the Responses API's events.

use serde_json::Value;

use super::{Dialect, EventRead, Instruction, provider_failed, string_field};

/// `choices[].delta.content` of a Chat Completions chunk, joined: the
/// first choice's (`index` 0, or no index). A request with `n` > 1 streams
/// several answers in the same chunks; a task holds one. The first choice's
/// `finish_reason` ends it after the chunk's text: a stream written as JSON
/// lines (an SDK's `toReadableStream()`) has no `[DONE]`; in an event
/// stream the `[DONE]` after it has nothing left to end. `failure`: an
/// error beside the choices, which ends it after their text.
pub(super) fn openai_chunk(
    choices: &Value,
    failure: Option<Instruction>,
) -> Result<EventRead, String> {
    let choices = choices
        .as_array()
        .ok_or("choices must be an array of chunk choices")?;
    let mut text = String::new();
    let mut end = failure;
    for (index, choice) in choices.iter().enumerate() {
        if choice
            .get("index")
            .is_some_and(|choice_index| choice_index.as_u64() != Some(0))
        {
            continue;
        }
        end = end.or(match choice.get("finish_reason").and_then(Value::as_str) {
            None | Some("") => None,
            // OpenAI-compatible routers end a failed answer so.
            Some("error") => Some(provider_failed(None)),
            Some(_) => Some(Instruction::Complete { result: None }),
        });
        // `null` or absent: a chunk of the role, a tool call or the finish reason.
        match choice.pointer("/delta/content") {
            None | Some(Value::Null) => {}
            Some(Value::String(content)) => text.push_str(content),
            // Some OpenAI-compatible providers send content parts instead.
            Some(Value::Array(parts)) if parts.iter().all(is_text_part) => {
                parts
                    .iter()
                    .filter_map(|part| part.get("text").and_then(Value::as_str))
                    .for_each(|part| text.push_str(part));
            }
            Some(_) => {
                return Err(format!(
                    "choices[{index}].delta.content must be a string, null or text parts"
                ));
            }
        }
    }
    Ok(EventRead::text_then(text, end, Dialect::OpenAiChat))
}

/// A content part (`{"type": "text", "text": "..."}`), or another kind of
/// part (an image, reasoning) that carries no answer text.
fn is_text_part(part: &Value) -> bool {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => part.get("text").is_some_and(Value::is_string),
        Some(_) => true,
        None => false,
    }
}

/// An event of the OpenAI Responses API, `response.` cut off its type.
/// Text deltas of every output item count (an answer may be split around a
/// tool call); a refusal is not answer text.
pub(super) fn responses_event(event: &str, value: &Value) -> Result<Instruction, String> {
    Ok(match event {
        "output_text.delta" => Instruction::Delta {
            text: string_field(value, "delta", "a response.output_text.delta event")?,
            seq: None,
        },
        // `incomplete`: cut short (the token limit, a content filter); what
        // was written is the answer, as with a Chat Completions `length`.
        "completed" | "incomplete" => Instruction::Complete { result: None },
        "failed" => Instruction::Fail {
            error: value
                .pointer("/response/error/message")
                .and_then(Value::as_str)
                .unwrap_or("the model provider failed")
                .to_owned(),
        },
        _ => Instruction::Nothing,
    })
}
