//! What a model's provider says of a part of an answer (the AI SDK's
//! `providerMetadata`: Anthropic's thinking signature, Gemini's thought
//! signature of a tool call, OpenAI's item ids), which a chat's next model
//! call needs back. One rule for every way it comes in, the SDK's schema's:
//! an object of providers, each an object. A task's events keep it as
//! `provider_metadata`.

use serde_json::Value;

/// `said` if it reads as provider metadata (`None` when absent or null);
/// refused otherwise, as the SDK's reader would refuse the part. `named`
/// names the field in the refusal (formatted only then: this runs for
/// every text delta of an AI SDK upload).
pub fn checked_provider_metadata(
    said: Option<Value>,
    named: impl FnOnce() -> String,
) -> Result<Option<Value>, String> {
    match said {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(providers)) if providers.values().all(Value::is_object) => {
            Ok(Some(Value::Object(providers)))
        }
        Some(_) => Err(format!(
            "{} must be an object of objects (one per provider)",
            named()
        )),
    }
}

/// Adds `said` to a task event's `data`, when there is some.
pub fn add_provider_metadata(data: &mut Value, said: Option<&Value>) {
    if let Some(said) = said {
        data["provider_metadata"] = said.clone();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_object_of_objects_reads_and_anything_else_is_refused_naming_the_field() {
        let named = || "a file part's providerMetadata".to_owned();
        let said = json!({ "google": { "thoughtSignature": "TS" }, "openai": {} });
        assert_eq!(
            checked_provider_metadata(Some(said.clone()), named),
            Ok(Some(said))
        );
        assert_eq!(checked_provider_metadata(None, named), Ok(None));
        assert_eq!(
            checked_provider_metadata(Some(Value::Null), named),
            Ok(None)
        );
        for wrong in [
            json!("x"),
            json!([1]),
            json!({ "openai": 5 }),
            json!({ "openai": null }),
        ] {
            let refused = checked_provider_metadata(Some(wrong.clone()), named).unwrap_err();
            assert!(
                refused.starts_with("a file part's providerMetadata must be"),
                "{wrong}: {refused}"
            );
        }
    }
}
