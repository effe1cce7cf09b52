//! What `ai` 7 added to the AI SDK's UI message stream, as an upload
//! reads it.

use super::*;
use crate::domain::{AnswerPart, TextKind};
use serde_json::json;

/// What `ai` 7 added: a text end's `citations`, `reasoning-file`,
/// `custom` and `steering-message` parts are kept; `reset-step` is known
/// and skipped (see `ai-sdk.md`).
#[test]
fn an_ai_sdk_7_streams_citations_reasoning_files_and_custom_parts_are_kept() {
    let cited = read(
        r#"{"type":"text-end","id":"t1","citations":[{"source":{"type":"source","sourceType":"url","id":"s1","url":"https://e.com","title":"E"},"startIndex":0,"endIndex":4,"citedText":"cold"}]}"#,
    );
    let source = AnswerPart::url_source("s1", "https://e.com", Some("E".into()), "x").unwrap();
    let citation = crate::domain::Citation::new(source, Some(0), Some(4), Some("cold".into()), "x");
    let said = crate::domain::PartEndSaid {
        provider_metadata: None,
        citations: Some(vec![citation.unwrap()]),
    };
    assert_eq!(
        cited,
        (
            Instruction::TextEnd(TextKind::Answer, Some(said)),
            Some(Dialect::AiSdk)
        )
    );
    let written_so = read(
        r#"{"type":"text-end","id":"t1","citations":[{"source":{"type":"source","sourceType":"url","id":"s1","url":"https://e.com","title":"E"},"startIndex":0.0,"endIndex":4e0,"citedText":"cold"}]}"#,
    );
    assert_eq!(
        written_so, cited,
        "whole numbers however written, as JavaScript reads them"
    );
    let file = read(
        r#"{"type":"reasoning-file","url":"data:image/png;base64,AA==","mediaType":"image/png"}"#,
    );
    let made = AnswerPart::reasoning_file("data:image/png;base64,AA==", "image/png", "x").unwrap();
    assert_eq!(file, (Instruction::Part(made), Some(Dialect::AiSdk)));
    let custom = read(
        r#"{"type":"custom","kind":"openai.compaction","providerMetadata":{"openai":{"itemId":"c1"}}}"#,
    );
    let own = AnswerPart::custom("openai.compaction", "x")
        .unwrap()
        .with_provider_metadata(Some(json!({ "openai": { "itemId": "c1" } })));
    assert_eq!(custom, (Instruction::Part(own), Some(Dialect::AiSdk)));
    let steered = read(
        r#"{"type":"steering-message","id":"u1","parts":[{"type":"text","text":"Shorter."},{"type":"file","mediaType":"image/png","url":"u","providerReference":{"openai":"file_1"}}]}"#,
    );
    let file = crate::domain::SteeringPiece::file(
        "image/png",
        "u",
        None,
        Some(json!({ "openai": "file_1" })),
        "x",
    );
    let pieces = vec![
        crate::domain::SteeringPiece::Text {
            text: "Shorter.".into(),
            provider_metadata: None,
        },
        file.unwrap(),
    ];
    let message = crate::domain::SteeringMessage::new("u1", pieces, "x").unwrap();
    assert_eq!(
        steered,
        (
            Instruction::Part(AnswerPart::Steering(message)),
            Some(Dialect::AiSdk)
        )
    );
    // Said, though empty: the SDK's message keeps `citations: []`.
    let none_cited = read(r#"{"type":"text-end","id":"t1","citations":[]}"#);
    let said = crate::domain::PartEndSaid {
        provider_metadata: None,
        citations: Some(Vec::new()),
    };
    assert_eq!(
        none_cited.0,
        Instruction::TextEnd(TextKind::Answer, Some(said))
    );
    for skipped in [
        r#"{"type":"reset-step"}"#,
        r#"{"type":"text-end","id":"t1","citations":null}"#,
    ] {
        let read = read(skipped);
        assert_eq!(read.1, Some(Dialect::AiSdk), "{skipped}");
        assert!(
            matches!(
                read.0,
                Instruction::Nothing | Instruction::TextEnd(TextKind::Answer, None)
            ),
            "{skipped}"
        );
    }
    for (refused, said) in [
        (
            r#"{"type":"text-end","id":"t1","citations":{}}"#,
            "must be an array",
        ),
        (
            r#"{"type":"text-end","id":"t1","citations":[{"source":{"type":"source","sourceType":"document","id":"s1","mediaType":"application/pdf"}}]}"#,
            "needs title",
        ),
        (
            r#"{"type":"text-end","id":"t1","citations":[{"source":{"type":"source","sourceType":"url","id":"s1","url":"u"},"citedText":3}]}"#,
            "citedText must be a string",
        ),
        (r#"{"type":"custom"}"#, "needs kind"),
        (
            r#"{"type":"steering-message","id":"u1","parts":[{"type":"file","mediaType":"image/png","url":"u","filename":5}]}"#,
            "parts[0]'s filename must be a string",
        ),
        (
            r#"{"type":"text-end","id":"t1","citations":[{"source":{"type":"source","sourceType":"url","id":"s","url":"u","title":5}}]}"#,
            "title must be a string",
        ),
        (
            r#"{"type":"text-end","id":"t1","citations":[{"source":{"type":"src","sourceType":"url","id":"s","url":"u"}}]}"#,
            "must be of type source",
        ),
        (
            r#"{"type":"source-url","sourceId":"s","url":"u","title":["T"]}"#,
            "title must be a string",
        ),
        (
            r#"{"type":"text-end","id":"t1","citations":[{"source":{"type":"source","sourceType":"url","id":"s1","url":"u"},"endIndex":2.5}]}"#,
            "endIndex must be a whole number",
        ),
    ] {
        let error = event_stream_data(refused).unwrap_err();
        assert!(error.contains(said), "{refused}: {error}");
    }
}
