//! OpenAI's two streams: Chat Completions chunks (and the many APIs that
//! copy them) and the Responses API's events.

use serde_json::Value;

use super::{
    Dialect, EndNote, EventRead, Instruction, ToolPiece, provider_failed, string_field,
    tool_calls::input_of,
};
use crate::domain::{FinishReason, TokenUsage, ToolEvent};

/// `choices[].delta.content` (and `refusal`) of a Chat Completions chunk,
/// joined: the first choice's (`index` 0, or no index). A request with
/// several choices (`n` over 1) streams several answers in the same
/// chunks; a task holds one. The first choice's `finish_reason` is noted,
/// not acted on: the usage chunk comes after it
/// (`stream_options.include_usage`), and `[DONE]`, or the body's end (an
/// SDK's `toReadableStream()` writes no `[DONE]`), ends the answer.
/// `failure`: an error beside the choices, which ends it after their text.
pub(super) fn openai_chunk(
    chunk: &Value,
    choices: &Value,
    failure: Option<Instruction>,
) -> Result<EventRead, String> {
    let choices = choices
        .as_array()
        .ok_or("choices must be an array of chunk choices")?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut end = failure;
    let mut finish = None;
    let mut refuses = false;
    let mut tools = Vec::new();
    for (index, choice) in choices.iter().enumerate() {
        if choice
            .get("index")
            .is_some_and(|choice_index| choice_index.as_u64() != Some(0))
        {
            continue;
        }
        match choice.get("finish_reason").and_then(Value::as_str) {
            None | Some("") => {}
            // OpenAI-compatible routers end a failed answer so, some with
            // the choice's own error object.
            Some("error") => {
                let said = choice
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .filter(|message| !message.trim().is_empty())
                    .map(str::to_owned);
                end = end.or(Some(provider_failed(said)));
            }
            Some(said) => finish = finish.or(Some(said)),
        }
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
        // DeepSeek, vLLM and Qwen say `reasoning_content`; OpenRouter,
        // Ollama and Groq `reasoning`; some servers both, with the same
        // text: the first said is read, as the AI SDK reads it.
        let said = ["reasoning_content", "reasoning"]
            .into_iter()
            .find_map(|field| {
                let value = choice.get("delta")?.get(field)?;
                (!value.is_null()).then_some((field, value))
            });
        match said {
            None => {}
            Some((_, Value::String(thought))) => reasoning.push_str(thought),
            Some((field, _)) => {
                return Err(format!(
                    "choices[{index}].delta.{field} must be a string or null"
                ));
            }
        }
        if let Some(delta) = choice.get("delta") {
            tool_call_pieces(delta, index, &mut tools)?;
        }
        match choice.pointer("/delta/refusal") {
            None | Some(Value::Null) => {}
            Some(Value::String(refusal)) => {
                refuses |= !refusal.is_empty();
                text.push_str(refusal);
            }
            Some(_) => {
                return Err(format!(
                    "choices[{index}].delta.refusal must be a string or null"
                ));
            }
        }
    }
    let usage = chunk.get("usage").and_then(|usage| {
        TokenUsage::named(
            usage,
            ["prompt_tokens", "completion_tokens", "total_tokens"],
        )
    });
    let note = match finish {
        Some(said) => Some(EndNote::finish(chat_finish_reason(said), said, usage)),
        None => EndNote::usage(usage),
    };
    let note = EndNote::refusing(note, refuses);
    // Every call is whole once the choice says why it stopped.
    if finish.is_some() {
        tools.push(ToolPiece::End { index: None });
    }
    Ok(
        EventRead::text_then(reasoning, text, end, Dialect::OpenAiChat)
            .noting(note)
            .with_tools(tools),
    )
}

/// The pieces of tool calls in a chunk choice's `delta`: `tool_calls`
/// (`index`, and `id` and `function.name` in a call's first piece, then
/// `function.arguments` fragments), or the older `function_call` (one
/// call, no id).
fn tool_call_pieces(delta: &Value, choice: usize, out: &mut Vec<ToolPiece>) -> Result<(), String> {
    let calls = match delta.get("tool_calls") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(calls)) => calls.as_slice(),
        Some(_) => {
            return Err(format!(
                "choices[{choice}].delta.tool_calls must be an array"
            ));
        }
    };
    let old = delta.get("function_call").filter(|call| !call.is_null());
    let pieces = calls
        .iter()
        .enumerate()
        .map(|(at, call)| {
            let index = match call.get("index") {
                None => at as u64,
                Some(index) => index.as_u64().ok_or_else(|| {
                    format!("choices[{choice}].delta.tool_calls[{at}].index must be a number")
                })?,
            };
            Ok::<_, String>((index, call.get("id"), call.get("function")))
        })
        .chain(old.map(|call| Ok((0, None, Some(call)))));
    for piece in pieces {
        let (index, id, function) = piece?;
        let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
        let id = text(id);
        let name = text(function.and_then(|function| function.get("name")));
        if id.is_some() || name.is_some() {
            out.push(ToolPiece::Begin {
                index,
                id,
                name,
                input: None,
            });
        }
        match function.and_then(|function| function.get("arguments")) {
            Some(Value::String(fragment)) if !fragment.is_empty() => out.push(ToolPiece::Input {
                index,
                fragment: fragment.clone(),
            }),
            None | Some(Value::Null | Value::String(_)) => {}
            Some(_) => {
                return Err(format!(
                    "choices[{choice}].delta.tool_calls[{index}].function.arguments must be a string"
                ));
            }
        }
    }
    Ok(())
}

/// A Chat Completions `finish_reason` in the AI SDK's words.
fn chat_finish_reason(said: &str) -> FinishReason {
    match said {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        _ => FinishReason::Other,
    }
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
/// tool call), a refusal's too.
pub(super) fn responses_event(event: &str, value: &Value) -> Result<EventRead, String> {
    let usage = || {
        value.pointer("/response/usage").and_then(|usage| {
            TokenUsage::named(usage, ["input_tokens", "output_tokens", "total_tokens"])
        })
    };
    let (instruction, note) = match event {
        "output_text.delta" => {
            let text = string_field(value, "delta", "a response.output_text.delta event")?;
            (Instruction::answer(text), None)
        }
        "refusal.delta" => {
            let text = string_field(value, "delta", "a response.refusal.delta event")?;
            let note = EndNote::refusing(None, !text.is_empty());
            (Instruction::answer(text), note)
        }
        // A reasoning model's summary of its thinking (what OpenAI shows),
        // or the thinking itself (open-weight models served so).
        "reasoning_summary_text.delta" | "reasoning_text.delta" => {
            let what = format!("a response.{event} event");
            let text = string_field(value, "delta", &what)?;
            (Instruction::reasoning(text), None)
        }
        "output_item.added" => {
            let asks = value.get("item").is_some_and(is_tool_call);
            (Instruction::Nothing, EndNote::asking_for_tools(None, asks))
        }
        // A call is kept when its item is done: its arguments whole.
        "output_item.done" => {
            let item = value.get("item");
            let asks = item.is_some_and(is_tool_call);
            let tools = item.map(function_call).transpose()?.flatten();
            let read = EventRead::one(Instruction::Nothing, Some(Dialect::OpenAiResponses));
            return Ok(read
                .noting(EndNote::asking_for_tools(None, asks))
                .with_tools(tools.into_iter().map(ToolPiece::Whole).collect()));
        }
        "completed" => {
            let output = value.pointer("/response/output").and_then(Value::as_array);
            let asks = output.is_some_and(|items| items.iter().any(is_tool_call));
            let note = EndNote {
                asks_for_tools: asks,
                ..EndNote::finish(FinishReason::Stop, "completed", usage())
            };
            (Instruction::Complete { result: None }, Some(note))
        }
        // Cut short (the token limit, a content filter): what was written
        // is the answer, as with a Chat Completions `length`.
        "incomplete" => {
            let said = value
                .pointer("/response/incomplete_details/reason")
                .and_then(Value::as_str)
                .unwrap_or("incomplete");
            let reason = match said {
                "max_output_tokens" => FinishReason::Length,
                "content_filter" => FinishReason::ContentFilter,
                _ => FinishReason::Other,
            };
            let note = EndNote::finish(reason, said, usage());
            (Instruction::Complete { result: None }, Some(note))
        }
        "failed" => {
            let error = value
                .pointer("/response/error/message")
                .and_then(Value::as_str)
                .unwrap_or("the model provider failed")
                .to_owned();
            (Instruction::Fail { error }, None)
        }
        _ => (Instruction::Nothing, None),
    };
    Ok(EventRead::one(instruction, Some(Dialect::OpenAiResponses)).noting(note))
}

/// The call a finished output item is, if it is a function call (or a
/// custom tool's, whose input is free text).
fn function_call(item: &Value) -> Result<Option<ToolEvent>, String> {
    let what = "a function_call output item";
    let input = match item.get("type").and_then(Value::as_str) {
        Some("function_call") => input_of(string_field(item, "arguments", what)?),
        Some("custom_tool_call") => item.get("input").cloned().unwrap_or(Value::Null),
        _ => return Ok(None),
    };
    let id = string_field(item, "call_id", what)?;
    let name = string_field(item, "name", what)?;
    ToolEvent::call(&id, &name, input, what).map(Some)
}

/// An output item that asks the caller to run a tool (the model stops for
/// its result), as opposed to one the provider ran itself (a web search).
fn is_tool_call(item: &Value) -> bool {
    matches!(
        item.get("type").and_then(Value::as_str),
        Some("function_call" | "custom_tool_call" | "computer_call" | "local_shell_call")
    )
}
