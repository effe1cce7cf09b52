//! What an answer carries besides its text and its tools: the sources it
//! cites (a web page, a document), the files it made (an image; one made
//! in its reasoning), an app's own data parts (a "searching…" status, a
//! weather card's data), a provider's own kinds of content (`custom`) and a
//! person's messages steering a running agent (`domain::steering`). The
//! AI SDK streams them as `source-url`, `source-document`, `file`,
//! `reasoning-file`, `data-*`, `custom` and `steering-message` parts, and a chat UI renders
//! them beside the text, so a task keeps each as an event of its stream,
//! in order with its text: a viewer who joins late or resumes gets them in
//! their place.

use serde_json::{Value, json};

use super::{SteeringMessage, tool_events::label};

/// The event types of a task's answer parts.
pub const ANSWER_PART_EVENT_TYPES: [&str; 5] = [
    "source",
    "file",
    "data_part",
    "custom_part",
    "steering_message",
];

/// One part of an answer beside its text.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerPart {
    /// A source the answer cites, under the producer's id for it.
    Source {
        id: String,
        cited: Cited,
        title: Option<String>,
        /// What the model's provider said of it (the AI SDK's
        /// `providerMetadata`).
        provider_metadata: Option<Value>,
    },
    /// A file the model made, by URL (a `data:` URL, often); made in its
    /// reasoning (AI SDK 7's `reasoning-file`) or as part of the answer.
    File {
        url: String,
        media_type: String,
        provider_metadata: Option<Value>,
        reasoning: bool,
    },
    /// An app's own part `data-<name>`. Parts of one name with one `id`
    /// are one part in the message, each replacing the one before;
    /// a transient one reaches a live reader's `onData` and is not kept in
    /// its message.
    Data {
        name: String,
        id: Option<String>,
        data: Value,
        transient: bool,
    },
    /// Content of a kind only its provider knows (AI SDK 7's `custom`
    /// part: its `kind`, say `openai.compaction`, and what the provider
    /// said of it), which the chat's next model call may need back.
    Custom {
        kind: String,
        provider_metadata: Option<Value>,
    },
    /// A person's message delivered into the running answer.
    Steering(SteeringMessage),
}

/// What a source cites.
#[derive(Debug, Clone, PartialEq)]
pub enum Cited {
    Url(String),
    Document {
        media_type: String,
        filename: Option<String>,
    },
}

impl AnswerPart {
    /// A source citing a URL, its id checked (`what` names it in a refusal).
    pub fn url_source(
        id: &str,
        url: &str,
        title: Option<String>,
        what: &str,
    ) -> Result<Self, String> {
        Ok(Self::Source {
            id: label(id, "id", what)?,
            cited: Cited::Url(not_blank(url, "url", what)?),
            title,
            provider_metadata: None,
        })
    }

    /// A source citing a document; a document is named by its title.
    pub fn document_source(
        id: &str,
        media_type: &str,
        title: &str,
        filename: Option<String>,
        what: &str,
    ) -> Result<Self, String> {
        Ok(Self::Source {
            id: label(id, "id", what)?,
            cited: Cited::Document {
                media_type: label(media_type, "media type", what)?,
                filename,
            },
            title: Some(not_blank(title, "title", what)?),
            provider_metadata: None,
        })
    }

    /// A file, its URL and media type checked.
    pub fn file(url: &str, media_type: &str, what: &str) -> Result<Self, String> {
        Self::made_file(url, media_type, false, what)
    }

    /// A file the model made in its reasoning, checked as [`Self::file`].
    pub fn reasoning_file(url: &str, media_type: &str, what: &str) -> Result<Self, String> {
        Self::made_file(url, media_type, true, what)
    }

    fn made_file(url: &str, media_type: &str, reasoning: bool, what: &str) -> Result<Self, String> {
        Ok(Self::File {
            url: not_blank(url, "url", what)?,
            media_type: label(media_type, "media type", what)?,
            provider_metadata: None,
            reasoning,
        })
    }

    /// A provider's own content of `kind` (`openai.compaction`: not blank,
    /// no longer than a name).
    pub fn custom(kind: &str, what: &str) -> Result<Self, String> {
        Ok(Self::Custom {
            kind: label(kind, "kind", what)?,
            provider_metadata: None,
        })
    }

    /// A data part `data-<name>`, its name (and id, if any) checked.
    pub fn data(
        name: &str,
        id: Option<&str>,
        data: Value,
        transient: bool,
        what: &str,
    ) -> Result<Self, String> {
        Ok(Self::Data {
            name: label(name, "name", what)?,
            id: id.map(|id| label(id, "id", what)).transpose()?,
            data,
            transient,
        })
    }

    /// The event type carrying it.
    /// The same part, with what its provider said of it (a source's or a
    /// file's; an app's data part keeps none).
    pub fn with_provider_metadata(mut self, said: Option<Value>) -> Self {
        match &mut self {
            Self::Source {
                provider_metadata, ..
            }
            | Self::File {
                provider_metadata, ..
            }
            | Self::Custom {
                provider_metadata, ..
            } => *provider_metadata = said,
            Self::Data { .. } | Self::Steering(_) => {}
        }
        self
    }

    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Source { .. } => "source",
            Self::File { .. } => "file",
            Self::Data { .. } => "data_part",
            Self::Custom { .. } => "custom_part",
            Self::Steering(_) => "steering_message",
        }
    }

    /// What it is, as metrics label it.
    pub fn kind_label(&self) -> &'static str {
        match self {
            Self::Source { .. } => "source",
            Self::File {
                reasoning: false, ..
            } => "file",
            Self::File {
                reasoning: true, ..
            } => "reasoning_file",
            Self::Data { .. } => "data",
            Self::Custom { .. } => "custom",
            Self::Steering(_) => "steering_message",
        }
    }

    /// The labels [`Self::kind_label`] gives.
    pub const KIND_LABELS: [&'static str; 6] = [
        "source",
        "file",
        "reasoning_file",
        "data",
        "custom",
        "steering_message",
    ];

    /// The event's data, for the task `task_id`.
    pub fn data_of(&self, task_id: &str) -> Value {
        let mut data = self.fields();
        data["task_id"] = json!(task_id);
        data
    }

    /// The event's data but for the task's id: a source as a citation
    /// names it (`domain::part_end`).
    pub fn fields(&self) -> Value {
        match self {
            Self::Source {
                id,
                cited,
                title,
                provider_metadata,
            } => {
                let mut data = json!({ "source_id": id });
                match cited {
                    Cited::Url(url) => data["url"] = json!(url),
                    Cited::Document {
                        media_type,
                        filename,
                    } => {
                        data["media_type"] = json!(media_type);
                        if let Some(filename) = filename {
                            data["filename"] = json!(filename);
                        }
                    }
                }
                if let Some(title) = title {
                    data["title"] = json!(title);
                }
                super::add_provider_metadata(&mut data, provider_metadata.as_ref());
                data
            }
            Self::File {
                url,
                media_type,
                provider_metadata,
                reasoning,
            } => {
                let mut data = json!({ "url": url, "media_type": media_type });
                if *reasoning {
                    data["reasoning"] = Value::Bool(true);
                }
                super::add_provider_metadata(&mut data, provider_metadata.as_ref());
                data
            }
            Self::Data {
                name,
                id,
                data,
                transient,
            } => {
                let mut event = json!({ "name": name, "data": data });
                if let Some(id) = id {
                    event["id"] = json!(id);
                }
                if *transient {
                    event["transient"] = Value::Bool(true);
                }
                event
            }
            Self::Custom {
                kind,
                provider_metadata,
            } => {
                let mut data = json!({ "kind": kind });
                super::add_provider_metadata(&mut data, provider_metadata.as_ref());
                data
            }
            Self::Steering(message) => message.fields(),
        }
    }
}

/// Whether `event_type` is one of an answer part's.
pub fn is_answer_part_event_type(event_type: &str) -> bool {
    ANSWER_PART_EVENT_TYPES.contains(&event_type)
}

/// A URL or a title: not blank (its length is the line's limit).
fn not_blank(value: &str, field: &str, what: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(format!("{what}'s {field} is blank"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_becomes_the_event_viewers_read() {
        let page = AnswerPart::url_source("s1", "https://example.com/a", Some("A".into()), "x");
        let page = page.unwrap();
        assert_eq!(page.event_type(), "source");
        assert_eq!(
            page.data_of("t1"),
            json!({"task_id": "t1", "source_id": "s1", "url": "https://example.com/a", "title": "A"})
        );
        let doc = AnswerPart::document_source("s2", "application/pdf", "Q3", None, "x").unwrap();
        assert_eq!(
            doc.data_of("t1"),
            json!({"task_id": "t1", "source_id": "s2", "media_type": "application/pdf", "title": "Q3"})
        );
        let file = AnswerPart::file("data:image/png;base64,AA==", "image/png", "x").unwrap();
        assert_eq!((file.event_type(), file.kind_label()), ("file", "file"));
        assert_eq!(file.data_of("t1")["media_type"], "image/png");
        let data = AnswerPart::data("weather", Some("w1"), json!({"c": 3}), true, "x").unwrap();
        assert_eq!(data.event_type(), "data_part");
        assert_eq!(
            data.data_of("t1"),
            json!({"task_id": "t1", "name": "weather", "id": "w1", "data": {"c": 3}, "transient": true})
        );
        let plain = AnswerPart::data("status", None, json!("searching"), false, "x").unwrap();
        assert_eq!(
            plain.data_of("t1"),
            json!({"task_id": "t1", "name": "status", "data": "searching"})
        );
    }

    #[test]
    fn blank_ids_urls_names_and_titles_are_refused_naming_them() {
        let blank_url = AnswerPart::url_source("s1", " ", None, "a source");
        assert_eq!(blank_url, Err("a source's url is blank".into()));
        let blank_id = AnswerPart::url_source("", "https://e.com", None, "a source");
        assert_eq!(blank_id, Err("a source's id is blank".into()));
        let untitled = AnswerPart::document_source("s", "text/plain", "", None, "a source");
        assert_eq!(untitled, Err("a source's title is blank".into()));
        let nameless = AnswerPart::data("", None, Value::Null, false, "a data part");
        assert_eq!(nameless, Err("a data part's name is blank".into()));
        let long = "n".repeat(300);
        let error = AnswerPart::data("x", Some(&long), Value::Null, false, "d").unwrap_err();
        assert!(error.contains("id is longer than 256"), "{error}");
        assert!(AnswerPart::file("u", " ", "a file").is_err());
    }
}
