//! An answer's sources, files and data parts in a UI message stream:
//! `source-url` / `source-document`, `file` and `data-<name>`, as the SDK's
//! own stream has them. None of them ends the open text part: the SDK
//! appends each to the message where it comes and goes on writing the text
//! part it has open, so the message's parts are in the order they began.

use bytes::BytesMut;
use serde_json::{Value, json};

use super::{UiMessageTranslator, part};

impl UiMessageTranslator {
    /// The part of a task's `source`, `file` or `data_part` event.
    pub(super) fn answer_part(&mut self, event_type: &str, data: &Value, out: &mut BytesMut) {
        let mut written = match event_type {
            "source" => match data.get("url") {
                Some(url) => {
                    json!({ "type": "source-url", "sourceId": data["source_id"], "url": url })
                }
                None => json!({
                    "type": "source-document",
                    "sourceId": data["source_id"],
                    "mediaType": data["media_type"],
                    "title": data["title"],
                }),
            },
            "file" => {
                json!({ "type": "file", "url": data["url"], "mediaType": data["media_type"] })
            }
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
        // before the model's first step ("searching…").
        if event_type == "data_part" {
            self.start(out);
        } else {
            self.begin_step(out);
        }
        part(out, &written);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::AiSdkMajor;

    fn parts(events: &[(&str, Value)]) -> Vec<Value> {
        let mut translator = UiMessageTranslator::new("t1", AiSdkMajor::OLDEST);
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
}
