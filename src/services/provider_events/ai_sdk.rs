//! The AI SDK's UI message stream, as an app's `toUIMessageStreamResponse()`
//! writes it.

use serde_json::Value;

use super::{Dialect, EndNote, EventRead, Instruction, string_field};
use crate::domain::FinishReason;

/// A part of the AI SDK's UI message stream. A part of a kind this broker
/// does not know is skipped (the SDK adds kinds), and tells no dialect.
pub(super) fn ai_sdk_part(kind: &str, value: &Value) -> Result<EventRead, String> {
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    let instruction = match kind {
        "text-delta" => Instruction::answer(string_field(value, "delta", "a text-delta part")?),
        "reasoning-delta" => {
            Instruction::reasoning(string_field(value, "delta", "a reasoning-delta part")?)
        }
        // Its `finishReason` is already in the words a task keeps.
        "finish" => {
            let note = field("finishReason").and_then(|said| {
                FinishReason::parse(&said).map(|reason| EndNote::finish(reason, &said, None))
            });
            let complete = Instruction::Complete { result: None };
            return Ok(EventRead::one(complete, Some(Dialect::AiSdk)).noting(note));
        }
        // The AI SDK's error part says `errorText`; the OpenAI Responses
        // API's error event (`{"type": "error", "code", "message"}`) too is
        // read here, as its type has no `response.` prefix.
        "error" => {
            let (error, dialect) = match (field("errorText"), field("message")) {
                (Some(text), _) => (text, Some(Dialect::AiSdk)),
                (None, Some(message)) => (message, Some(Dialect::OpenAiResponses)),
                (None, None) => ("the generation failed".to_owned(), None),
            };
            return Ok(EventRead::one(Instruction::Fail { error }, dialect));
        }
        "abort" => Instruction::Cancel,
        known if is_ai_sdk_kind(known) => Instruction::Nothing,
        _ => return Ok(EventRead::one(Instruction::Nothing, None)),
    };
    Ok(EventRead::one(instruction, Some(Dialect::AiSdk)))
}

/// The UI message stream's part kinds that carry nothing a task keeps.
fn is_ai_sdk_kind(kind: &str) -> bool {
    const PREFIXES: [&str; 6] = ["text-", "reasoning-", "tool-", "source-", "data-", "file"];
    matches!(
        kind,
        "start" | "start-step" | "finish-step" | "message-metadata"
    ) || PREFIXES.iter().any(|prefix| kind.starts_with(prefix))
}
