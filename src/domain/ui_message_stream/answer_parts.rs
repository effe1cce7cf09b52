//! An answer's sources, files, data parts and providers' own parts in a UI
//! message stream: `source-url` / `source-document`, `file` /
//! `reasoning-file`, `data-<name>`, `custom` and `steering-message`, as the
//! SDK's own stream has them (`reasoning-file`, `custom` and
//! `steering-message` to a v7 reader only: an earlier reader's schema
//! refuses them, so it gets none, as its own SDK would give it none).
//! None of them ends the open text part: the SDK appends each to the
//! message where it comes and goes on writing the text part it has open,
//! so the message's parts are in the order they began.

use bytes::BytesMut;
use serde_json::{Value, json};

use super::{UiMessageTranslator, part};

impl UiMessageTranslator {
    /// The part of a task's `source`, `file`, `data_part`, `custom_part`
    /// or `steering_message` event.
    pub(super) fn answer_part(&mut self, event_type: &str, data: &Value, out: &mut BytesMut) {
        let v7 = self.client.has_v7_answer_parts();
        let mut written = match event_type {
            "source" => source(data, "source-url", "source-document", "sourceId"),
            "file" if data["reasoning"] == Value::Bool(true) && !v7 => return,
            "file" => {
                let kind = match data["reasoning"] {
                    Value::Bool(true) => "reasoning-file",
                    _ => "file",
                };
                json!({ "type": kind, "url": data["url"], "mediaType": data["media_type"] })
            }
            "custom_part" | "steering_message" if !v7 => return,
            "custom_part" => json!({ "type": "custom", "kind": data["kind"] }),
            "steering_message" => steering_message(data),
            _ => {
                let Some(name) = data["name"].as_str() else {
                    return;
                };
                json!({ "type": format!("data-{name}"), "data": data["data"] })
            }
        };
        for name in ["title", "filename", "id"] {
            if let Some(value) = data.get(name).filter(|value| value.is_string()) {
                written[name] = value.clone();
            }
        }
        if data["transient"] == Value::Bool(true) {
            written["transient"] = Value::Bool(true);
        }
        super::provider_metadata(data, &mut written);
        // A model's source or file belongs to the step that made it; an
        // app's data part is written wherever the app wrote it, often
        // before the model's first step ("searching…"); a steering message
        // comes before the step it steers, after the one before it ended.
        if event_type == "steering_message" {
            self.start(out);
            self.end_ended_step(out);
        } else if event_type == "data_part" {
            self.start(out);
        } else {
            self.begin_step(out);
        }
        part(out, &written);
    }
}

/// A task's `source` event's data (or a citation's source) as the SDK
/// names it: a URL's `url_kind`, a document's `document_kind`, its id under
/// `id_field`. Its title, file name and provider metadata are the caller's
/// to add.
fn source(data: &Value, url_kind: &str, document_kind: &str, id_field: &str) -> Value {
    let mut written = match data.get("url") {
        Some(url) => json!({ "type": url_kind, "url": url }),
        None => json!({
            "type": document_kind,
            "mediaType": data["media_type"],
            "title": data["title"],
        }),
    };
    written[id_field] = data["source_id"].clone();
    written
}

/// A task's `steering_message` event as the SDK's part: its parts' fields
/// under the SDK's names.
fn steering_message(data: &Value) -> Value {
    let said = data["parts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let parts: Vec<Value> = said
        .iter()
        .map(|piece| {
            let mut written = json!({ "type": piece["type"] });
            for (ours, theirs) in [
                ("text", "text"),
                ("media_type", "mediaType"),
                ("url", "url"),
                ("filename", "filename"),
                ("provider_reference", "providerReference"),
            ] {
                super::parts::carry(piece, ours, &mut written, theirs);
            }
            super::provider_metadata(piece, &mut written);
            written
        })
        .collect();
    json!({ "type": "steering-message", "id": data["id"], "parts": parts })
}

/// A text end event's `citations` as a v7 `text-end` part says them:
/// `{source: {type: "source", sourceType, id, …}, startIndex?, endIndex?,
/// citedText?}` each.
pub(super) fn citations(said: &Value) -> Value {
    let cited = said.as_array().map(Vec::as_slice).unwrap_or_default();
    cited
        .iter()
        .map(|citation| {
            let data = &citation["source"];
            let mut source = source(data, "url", "document", "id");
            source["sourceType"] = source["type"].take();
            source["type"] = json!("source");
            for name in ["title", "filename"] {
                super::parts::carry(data, name, &mut source, name);
            }
            super::provider_metadata(data, &mut source);
            let mut written = json!({ "source": source });
            for (ours, theirs) in [
                ("start_index", "startIndex"),
                ("end_index", "endIndex"),
                ("cited_text", "citedText"),
            ] {
                super::parts::carry(citation, ours, &mut written, theirs);
            }
            written
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::AiSdkMajor;

    fn parts(events: &[(&str, Value)]) -> Vec<Value> {
        parts_for(AiSdkMajor::OLDEST, events)
    }

    fn parts_for(client: AiSdkMajor, events: &[(&str, Value)]) -> Vec<Value> {
        let mut translator = UiMessageTranslator::new("t1", client);
        let mut out = BytesMut::new();
        for (event_type, data) in events {
            translator.translate(event_type, data, &mut out);
        }
        String::from_utf8(out.to_vec())
            .unwrap()
            .split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .filter(|data| *data != "[DONE]")
            .map(|data| serde_json::from_str(data).unwrap())
            .collect()
    }

    #[test]
    fn sources_and_files_come_in_their_step_and_leave_the_text_part_open() {
        let text = |delta: &str| ("text", json!({ "task_id": "t1", "delta": delta }));
        let events = [
            ("connected", json!({})),
            (
                "source",
                json!({ "task_id": "t1", "source_id": "s1", "url": "https://e.com", "title": "E" }),
            ),
            text("Oslo is "),
            (
                "source",
                json!({ "task_id": "t1", "source_id": "s2", "media_type": "application/pdf", "title": "Q3", "filename": "q3.pdf" }),
            ),
            (
                "file",
                json!({ "task_id": "t1", "url": "data:image/png;base64,AA==", "media_type": "image/png" }),
            ),
            text("cold."),
        ];
        assert_eq!(
            parts(&events),
            [
                json!({ "type": "start", "messageId": "t1" }),
                json!({ "type": "start-step" }),
                json!({ "type": "source-url", "sourceId": "s1", "url": "https://e.com", "title": "E" }),
                json!({ "type": "text-start", "id": "text" }),
                json!({ "type": "text-delta", "id": "text", "delta": "Oslo is " }),
                json!({ "type": "source-document", "sourceId": "s2", "mediaType": "application/pdf", "title": "Q3", "filename": "q3.pdf" }),
                json!({ "type": "file", "url": "data:image/png;base64,AA==", "mediaType": "image/png" }),
                json!({ "type": "text-delta", "id": "text", "delta": "cold." }),
            ]
        );
    }

    #[test]
    fn a_text_parts_end_parts_the_text_after_it_from_the_text_before() {
        let text = |delta: &str| ("text", json!({ "task_id": "t1", "delta": delta }));
        let end = |kind: &'static str| (kind, json!({ "task_id": "t1" }));
        let source = json!({ "task_id": "t1", "source_id": "s1", "url": "https://e.com" });
        let events = [
            ("connected", json!({})),
            text("One."),
            end("text_end"),
            ("source", source),
            text("Two."),
            // The end of a part of the other kind, or of none, ends nothing.
            end("reasoning_end"),
            text(" More."),
            end("text_end"),
            end("text_end"),
            text("Three."),
        ];
        assert_eq!(
            parts(&events),
            [
                json!({ "type": "start", "messageId": "t1" }),
                json!({ "type": "start-step" }),
                json!({ "type": "text-start", "id": "text" }),
                json!({ "type": "text-delta", "id": "text", "delta": "One." }),
                json!({ "type": "text-end", "id": "text" }),
                json!({ "type": "source-url", "sourceId": "s1", "url": "https://e.com" }),
                json!({ "type": "text-start", "id": "text-2" }),
                json!({ "type": "text-delta", "id": "text-2", "delta": "Two." }),
                json!({ "type": "text-delta", "id": "text-2", "delta": " More." }),
                json!({ "type": "text-end", "id": "text-2" }),
                json!({ "type": "text-start", "id": "text-3" }),
                json!({ "type": "text-delta", "id": "text-3", "delta": "Three." }),
            ]
        );
    }

    #[test]
    fn a_data_part_comes_where_it_came_with_its_id_and_transience() {
        let events = [
            ("connected", json!({})),
            (
                "data_part",
                json!({ "task_id": "t1", "name": "status", "data": "searching", "transient": true }),
            ),
            (
                "data_part",
                json!({ "task_id": "t1", "name": "weather", "id": "w1", "data": { "c": 3 } }),
            ),
            ("text", json!({ "task_id": "t1", "delta": "Cold." })),
            // A data part without a name is no part.
            ("data_part", json!({ "task_id": "t1", "data": 1 })),
        ];
        assert_eq!(
            parts(&events),
            [
                json!({ "type": "start", "messageId": "t1" }),
                json!({ "type": "data-status", "data": "searching", "transient": true }),
                json!({ "type": "data-weather", "id": "w1", "data": { "c": 3 } }),
                json!({ "type": "start-step" }),
                json!({ "type": "text-start", "id": "text" }),
                json!({ "type": "text-delta", "id": "text", "delta": "Cold." }),
            ]
        );
    }

    #[test]
    fn citations_reasoning_files_and_custom_parts_reach_a_v7_reader_and_no_earlier_one() {
        let citation = json!({
            "source": { "source_id": "s2", "media_type": "application/pdf", "title": "Q3", "filename": "q3.pdf", "provider_metadata": { "a": { "page": 4 } } },
            "start_index": 0, "end_index": 5, "cited_text": "cold"
        });
        let events = [
            ("connected", json!({})),
            (
                "steering_message",
                json!({ "task_id": "t1", "id": "u1", "parts": [
                    { "type": "text", "text": "Shorter." },
                    { "type": "file", "media_type": "image/png", "url": "u", "provider_reference": { "openai": "f1" } },
                ]}),
            ),
            (
                "file",
                json!({ "task_id": "t1", "url": "data:image/png;base64,AA==", "media_type": "image/png", "reasoning": true }),
            ),
            (
                "custom_part",
                json!({ "task_id": "t1", "kind": "openai.compaction", "provider_metadata": { "openai": { "itemId": "c1" } } }),
            ),
            ("text", json!({ "task_id": "t1", "delta": "Cold." })),
            (
                "text_end",
                json!({ "task_id": "t1", "citations": [citation, { "source": { "source_id": "s1", "url": "https://e.com" } }] }),
            ),
            ("text", json!({ "task_id": "t1", "delta": "More." })),
        ];
        let v7 = AiSdkMajor::parse("7").expect("a version");
        let cited = json!([
            {
                "source": { "type": "source", "sourceType": "document", "id": "s2", "mediaType": "application/pdf", "title": "Q3", "filename": "q3.pdf", "providerMetadata": { "a": { "page": 4 } } },
                "startIndex": 0, "endIndex": 5, "citedText": "cold"
            },
            { "source": { "type": "source", "sourceType": "url", "id": "s1", "url": "https://e.com" } }
        ]);
        assert_eq!(
            parts_for(v7, &events),
            [
                json!({ "type": "start", "messageId": "t1" }),
                json!({ "type": "steering-message", "id": "u1", "parts": [
                    { "type": "text", "text": "Shorter." },
                    { "type": "file", "mediaType": "image/png", "url": "u", "providerReference": { "openai": "f1" } },
                ]}),
                json!({ "type": "start-step" }),
                json!({ "type": "reasoning-file", "url": "data:image/png;base64,AA==", "mediaType": "image/png" }),
                json!({ "type": "custom", "kind": "openai.compaction", "providerMetadata": { "openai": { "itemId": "c1" } } }),
                json!({ "type": "text-start", "id": "text" }),
                json!({ "type": "text-delta", "id": "text", "delta": "Cold." }),
                json!({ "type": "text-end", "id": "text", "citations": cited }),
                json!({ "type": "text-start", "id": "text-2" }),
                json!({ "type": "text-delta", "id": "text-2", "delta": "More." }),
            ]
        );
        // An earlier reader: no v7 kinds, and the end only parts the text.
        for earlier in ["5", "6"] {
            let client = AiSdkMajor::parse(earlier).expect("a version");
            assert_eq!(
                parts_for(client, &events),
                [
                    json!({ "type": "start", "messageId": "t1" }),
                    json!({ "type": "start-step" }),
                    json!({ "type": "text-start", "id": "text" }),
                    json!({ "type": "text-delta", "id": "text", "delta": "Cold." }),
                    json!({ "type": "text-end", "id": "text" }),
                    json!({ "type": "text-start", "id": "text-2" }),
                    json!({ "type": "text-delta", "id": "text-2", "delta": "More." }),
                ],
                "{earlier}"
            );
        }
    }

    #[test]
    fn a_steering_message_comes_after_the_step_before_it_ended_and_before_the_next() {
        let v7 = AiSdkMajor::parse("7").expect("a version");
        let events = [
            ("connected", json!({})),
            ("text", json!({ "task_id": "t1", "delta": "A" })),
            ("step_end", json!({ "task_id": "t1", "result": null })),
            (
                "steering_message",
                json!({ "task_id": "t1", "id": "u1", "parts": [{ "type": "text", "text": "Shorter." }] }),
            ),
            ("text", json!({ "task_id": "t1", "delta": "B" })),
        ];
        assert_eq!(
            parts_for(v7, &events),
            [
                json!({ "type": "start", "messageId": "t1" }),
                json!({ "type": "start-step" }),
                json!({ "type": "text-start", "id": "text" }),
                json!({ "type": "text-delta", "id": "text", "delta": "A" }),
                json!({ "type": "text-end", "id": "text" }),
                json!({ "type": "finish-step" }),
                json!({ "type": "steering-message", "id": "u1", "parts": [{ "type": "text", "text": "Shorter." }] }),
                json!({ "type": "start-step" }),
                json!({ "type": "text-start", "id": "text-2" }),
                json!({ "type": "text-delta", "id": "text-2", "delta": "B" }),
            ]
        );
    }
}
