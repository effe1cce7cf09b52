//! A person's message delivered into a running agent (AI SDK 7's
//! steering: `experimental_createSteering().steer(…)` adds a user message
//! at the next step's start, and the answer's stream carries it as a
//! `steering-message` part). A chat UI shows it inside the answer, where
//! it steered the model, so a task keeps it as an event of its stream in
//! its place: a viewer who joins late or resumes still sees what the
//! person said.

use serde_json::{Map, Value, json};

use super::tool_events::label;

/// A steering message: its id (the one `steer` was given, or the SDK's)
/// and its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringMessage {
    id: String,
    parts: Vec<SteeringPiece>,
}

/// A part of a steering message, as a user message has them.
#[derive(Debug, Clone, PartialEq)]
pub enum SteeringPiece {
    Text {
        text: String,
        provider_metadata: Option<Value>,
    },
    File {
        media_type: String,
        url: String,
        filename: Option<String>,
        /// The provider's own names of an uploaded file (the SDK's
        /// `providerReference`: provider → file id).
        provider_reference: Option<Map<String, Value>>,
        provider_metadata: Option<Value>,
    },
}

impl SteeringMessage {
    /// The message `id` (checked) of `parts`; `what` names it in a refusal.
    pub fn new(id: &str, parts: Vec<SteeringPiece>, what: &str) -> Result<Self, String> {
        Ok(Self {
            id: label(id, "id", what)?,
            parts,
        })
    }

    /// The event's data but for the task's id: `{"id", "parts": [{"type":
    /// "text", "text", "provider_metadata"?} | {"type": "file",
    /// "media_type", "url", "filename"?, "provider_reference"?,
    /// "provider_metadata"?}]}`.
    pub fn fields(&self) -> Value {
        let parts: Vec<Value> = self.parts.iter().map(SteeringPiece::data).collect();
        json!({ "id": self.id, "parts": parts })
    }
}

impl SteeringPiece {
    /// A file part, its media type and URL checked, its provider reference
    /// an object of strings (as the SDK's schema has it).
    pub fn file(
        media_type: &str,
        url: &str,
        filename: Option<String>,
        provider_reference: Option<Value>,
        what: &str,
    ) -> Result<Self, String> {
        let provider_reference = match provider_reference {
            None | Some(Value::Null) => None,
            Some(Value::Object(named)) if named.values().all(Value::is_string) => Some(named),
            Some(_) => {
                return Err(format!(
                    "{what}'s provider reference must be an object of strings"
                ));
            }
        };
        if url.trim().is_empty() {
            return Err(format!("{what}'s url is blank"));
        }
        Ok(Self::File {
            media_type: label(media_type, "media type", what)?,
            url: url.to_owned(),
            filename,
            provider_reference,
            provider_metadata: None,
        })
    }

    /// The same part, with what its provider said of it.
    pub fn with_provider_metadata(mut self, said: Option<Value>) -> Self {
        match &mut self {
            Self::Text {
                provider_metadata, ..
            }
            | Self::File {
                provider_metadata, ..
            } => *provider_metadata = said,
        }
        self
    }

    fn data(&self) -> Value {
        let (mut data, said) = match self {
            Self::Text {
                text,
                provider_metadata,
            } => (json!({ "type": "text", "text": text }), provider_metadata),
            Self::File {
                media_type,
                url,
                filename,
                provider_reference,
                provider_metadata,
            } => {
                let mut data = json!({ "type": "file", "media_type": media_type, "url": url });
                if let Some(filename) = filename {
                    data["filename"] = json!(filename);
                }
                if let Some(named) = provider_reference {
                    data["provider_reference"] = Value::Object(named.clone());
                }
                (data, provider_metadata)
            }
        };
        super::add_provider_metadata(&mut data, said.as_ref());
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steering_message_is_kept_as_its_id_and_parts() {
        let text = SteeringPiece::Text {
            text: "in French".into(),
            provider_metadata: None,
        };
        let file = SteeringPiece::file(
            "image/png",
            "data:image/png;base64,AA==",
            Some("a.png".into()),
            Some(json!({ "openai": "file_1" })),
            "x",
        )
        .unwrap()
        .with_provider_metadata(Some(json!({ "openai": { "detail": "low" } })));
        let message = SteeringMessage::new("u1", vec![text, file], "x").unwrap();
        assert_eq!(
            message.fields(),
            json!({ "id": "u1", "parts": [
                { "type": "text", "text": "in French" },
                { "type": "file", "media_type": "image/png", "url": "data:image/png;base64,AA==", "filename": "a.png",
                  "provider_reference": { "openai": "file_1" }, "provider_metadata": { "openai": { "detail": "low" } } },
            ]})
        );
        assert!(SteeringMessage::new(" ", Vec::new(), "x").is_err());
        let named = Some(json!({ "openai": 1 }));
        assert!(SteeringPiece::file("image/png", "u", None, named, "x").is_err());
        assert!(SteeringPiece::file("image/png", " ", None, None, "x").is_err());
    }
}
