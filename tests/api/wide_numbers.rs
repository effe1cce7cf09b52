//! Whole numbers beyond 64 bits: refused with the number's place, never
//! stored rounded (serde_json would read one as a float and lose digits).

use serde_json::Value;

use crate::{
    generations::{Upload, create},
    helpers::{assert_error, spawn_app},
};

#[actix_web::test]
async fn a_whole_number_beyond_64_bits_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    create(&app, "wide").await;
    for (path, body) in [
        (
            "/sse/publish",
            "{\"event_type\":\"commit\",\n \"data\":{\"é\":123456789012345678901234567890}}",
        ),
        (
            "/sse/publish",
            r#"[{"event_type":"commit"},{"event_type":"commit","data":{"m":-9223372036854775809}}]"#,
        ),
        (
            "/tasks/wide/complete",
            r#"{"result":{"k":18446744073709551616}}"#,
        ),
    ] {
        let response = app.post_raw(path, body, Some("application/json")).await;
        let error = assert_error(response, 400, "malformed_json").await;
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("beyond 64 bits") && message.contains("send it as a string"),
            "{path}: {message}"
        );
    }
    // Placed as a syntax error is, in characters: line 2, column 14.
    let response = app
        .post_raw(
            "/sse/publish",
            "{\"event_type\":\"commit\",\n \"data\":{\"é\":123456789012345678901234567890}}",
            Some("application/json"),
        )
        .await;
    let error = assert_error(response, 400, "malformed_json").await;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("(line 2, column 14)"), "{message}");
    assert_eq!(app.stats().await["events_published"], 0);
    let task: Value = app.get("/tasks/wide").await.json().await.expect("JSON");
    assert_eq!(task["status"], "pending", "{task}");

    // The widest that fit, and the same digits as a string, pass exactly.
    let exact = r#"{"event_type":"commit","data":{"u":18446744073709551615,"i":-9223372036854775808,"s":"123456789012345678901234567890"}}"#;
    let response = app
        .post_raw("/sse/publish", exact, Some("application/json"))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let history = app.get("/sse/history").await.text().await.expect("a body");
    assert!(
        history.contains(r#""i":-9223372036854775808"#)
            && history.contains(r#""u":18446744073709551615"#)
            && history.contains(r#""s":"123456789012345678901234567890""#),
        "{history}"
    );

    // Any other number is its nearest double, as `JSON.parse` reads it:
    // serde_json's default parser was an ulp off for about one double in
    // four (`1.5e-300` came back `1.4999999999999998e-300`).
    let doubles = r#"{"event_type":"commit","data":{"tiny":1.5e-300,"e":2.718281828459045e-200,"big":9007199254740993.0,"z":3.9166573353688696e-29}}"#;
    let response = app
        .post_raw("/sse/publish", doubles, Some("application/json"))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let history = app.get("/sse/history").await.text().await.expect("a body");
    for exact in [
        r#""tiny":1.5e-300"#,
        r#""e":2.718281828459045e-200"#,
        r#""big":9007199254740992.0"#,
        r#""z":3.9166573353688696e-29"#,
    ] {
        assert!(history.contains(exact), "{exact} in {history}");
    }

    // An upload's line: refused naming the line, the lines before it kept.
    let upload = Upload::start(&app, "wide", "application/x-ndjson");
    upload.send("{\"delta\": \"kept\"}\n").await;
    upload
        .send("{\"data_part\": {\"name\": \"n\", \"data\": 99999999999999999999}}\n")
        .await;
    let error = assert_error(upload.finish().await, 422, "invalid_payload").await;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("line 2:") && message.contains("beyond 64 bits"),
        "{message}"
    );
}
