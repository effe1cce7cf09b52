//! serde's input errors in plain words that name the field.
//!
//! serde describes a bad input in Rust's terms (`invalid type: string "x",
//! expected u64`, ``missing field `event_type` ``, plus serde_json's `at line
//! 1 column 5`), and never says which field failed. `serde_path_to_error`
//! records the field; this module rewrites serde's standard messages (the
//! provided methods of `serde::de::Error`, and the `FromStr` errors that
//! serde_urlencoded passes through) as "`<field>` must be `<what>`". A
//! message it does not know becomes "`<field>` is not valid": never the
//! library's text.
//!
//! Every JSON body, query string and publish item goes through here, so a
//! new handler type gets plain messages without writing any.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde_json::error::Category;
use serde_path_to_error::{Path, Segment};

use crate::domain::quoted_input;

/// Why a JSON body was refused: the document itself, or one of its fields.
#[derive(Debug, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON at all (400 `malformed_json`).
    Syntax(String),
    /// JSON, but a field is missing or has the wrong type (422).
    Field(String),
}

/// Parses a JSON body into `T`.
pub fn from_json_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    // JSON is UTF-8 throughout (RFC 8259); serde_json checks only the
    // strings it keeps, so a bad byte in a field the type ignores would
    // otherwise pass.
    let text = std::str::from_utf8(bytes).map_err(|error| {
        JsonError::Syntax(format!(
            "the request body is not valid UTF-8 (byte {})",
            error.valid_up_to() + 1
        ))
    })?;
    if let Some(at) = super::wide_integers::first_wide_integer(text) {
        // Where, as a syntax error says it: line and column (characters).
        let before = &text[..at];
        let line = 1 + before.matches('\n').count();
        let column = 1 + before[before.rfind('\n').map_or(0, |n| n + 1)..]
            .chars()
            .count();
        return Err(JsonError::Syntax(format!(
            "the request body holds a whole number beyond 64 bits (line {line}, column \
             {column}), which would be kept rounded: send it as a string"
        )));
    }
    parse_text(text)
}

/// [`from_json_slice`] past its checks of the bytes (UTF-8, wide numbers).
fn parse_text<T: DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    // Tracking the path allocates for every key of every body; only a
    // refused body needs it, so it is parsed again to say where.
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().clone();
        let inner = error.into_inner();
        match inner.classify() {
            // serde stops at the first field it refuses (an unknown key)
            // before it reads the rest: a document broken further on is
            // malformed JSON all the same, and says so.
            Category::Data => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Err(syntax) => JsonError::Syntax(syntax_message(&syntax)),
                Ok(_) => JsonError::Field(describe(&path, &message_of(&inner), "the body")),
            },
            Category::Syntax | Category::Eof | Category::Io => {
                JsonError::Syntax(syntax_message(&inner))
            }
        }
    })?;
    deserializer
        .end()
        .map_err(|error| JsonError::Syntax(syntax_message(&error)))?;
    Ok(value)
}

/// Parses a JSON body that must be an object into `T`. serde also reads a
/// struct from an array of its fields in order, so without this check `[5]`
/// would pass for `{"result": 5}`.
pub fn from_json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        // Not JSON at all is still a syntax error.
        from_json_slice::<serde::de::IgnoredAny>(bytes)?;
        return Err(JsonError::Field("the body must be a JSON object".into()));
    }
    from_json_slice(bytes)
}

/// [`from_json_object`] for an optional body: JSON `null` is no body, as
/// an empty one is (the document says `oneOf: [object, null]`).
pub fn from_json_object_or_null<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, JsonError> {
    if bytes.trim_ascii() == b"null" {
        return Ok(None);
    }
    from_json_object(bytes).map(Some)
}

/// Reads `T` from an already parsed JSON value (one item of a batch).
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value)
        .map_err(|error| describe(error.path(), &message_of(error.inner()), "the event"))
}

/// Reads `T` from a query string (`limit=10&event_types=a,b`).
pub fn from_query<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer)
        .map_err(|error| describe(error.path(), &error.inner().to_string(), "the query string"))
}

/// serde_json's message without its `at line L column C` suffix.
fn message_of(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

/// [`from_json_object`] for one line of an NDJSON body: a syntax error
/// says the column, in words about the line (the caller names the line).
pub fn from_json_line<T: DeserializeOwned>(line: &str) -> Result<T, JsonError> {
    if let Some(at) = super::wide_integers::first_wide_integer(line) {
        return Err(JsonError::Field(format!(
            "a whole number beyond 64 bits (column {}) would be kept rounded: send it as a string",
            at + 1
        )));
    }
    // An object (every good line) is parsed without scanning its numbers
    // again, as `from_json_slice` would: once per line, per token.
    let parsed = if line.trim_start().starts_with('{') {
        parse_text(line)
    } else {
        from_json_object(line.as_bytes())
    };
    parsed.map_err(|error| match error {
        JsonError::Syntax(message) => match serde_json::from_str::<serde::de::IgnoredAny>(line) {
            Err(error) => JsonError::Syntax(format!(
                "not valid JSON: {} (column {})",
                syntax_reason(&error),
                error.column()
            )),
            // Only the typed read counts depth: the line is JSON, too deep.
            Ok(_) if message.contains(NESTED_TOO_DEEPLY) => {
                JsonError::Syntax(format!("not valid JSON: {NESTED_TOO_DEEPLY}"))
            }
            Ok(_) => JsonError::Field("the line must be a JSON object".into()),
        },
        JsonError::Field(_) if !line.trim_start().starts_with('{') => {
            JsonError::Field("the line must be a JSON object".into())
        }
        field => field,
    })
}

/// What a document nested past serde_json's recursion limit is told.
const NESTED_TOO_DEEPLY: &str = "it is nested too deeply (128 levels or more)";

/// A JSON syntax error, with where it is in words a reader can use.
fn syntax_message(error: &serde_json::Error) -> String {
    syntax_error_in("the request body", error)
}

/// A JSON syntax error in `what` (`the event's data`), with where it is.
pub fn syntax_error_in(what: &str, error: &serde_json::Error) -> String {
    format!(
        "{what} is not valid JSON: {} (line {}, column {})",
        syntax_reason(error),
        error.line(),
        error.column()
    )
}

/// What is wrong, in words a reader can use.
fn syntax_reason(error: &serde_json::Error) -> &'static str {
    let message = message_of(error);
    if error.classify() == Category::Eof {
        "it ends before the document is complete"
    } else if message == "trailing comma" {
        "a comma comes right before a closing bracket"
    } else if message == "trailing characters" {
        "there is more text after the JSON document"
    } else if message == "key must be a string" {
        "object keys must be strings in double quotes"
    } else if message == "expected value" || message == "expected ident" {
        "a value is not JSON (strings need double quotes)"
    } else if message.starts_with("expected `:`") {
        "a colon is missing after an object key"
    } else if message.starts_with("expected `,` or `]`") {
        "a comma or a closing ] is missing in an array"
    } else if message.starts_with("expected `,` or `}`") {
        "a comma or a closing } is missing in an object"
    } else if message.starts_with("control character") {
        "a string holds a raw control character (escape it, as \\n)"
    } else if message.contains("surrogate") || message.contains("end of hex escape") {
        // serde_json's words for a leading surrogate escape with no trailing one after it.
        "a string holds half a character (a lone UTF-16 surrogate escape such as \\ud83d): send whole characters"
    } else if message.contains("escape") || message.contains("unicode code point") {
        "a string holds an invalid escape sequence"
    } else if message.contains("number") {
        "a number is malformed or out of range"
    } else if message == "recursion limit exceeded" {
        NESTED_TOO_DEEPLY
    } else {
        "it is not well-formed JSON"
    }
}

/// `path` as a client wrote it (`event_types[2]`, `data.progress`), or
/// `None` for the document itself.
fn field_name(path: &Path) -> Option<String> {
    let mut name = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(name, "[{index}]");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(&field_label(key));
            }
            Segment::Unknown => {
                if !name.is_empty() {
                    name.push('.');
                }
                name.push('?');
            }
        }
    }
    (!name.is_empty()).then_some(name)
}

/// A field name as sent: bare when it looks like one, else quoted.
pub fn field_label(key: &str) -> String {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if plain {
        key.to_owned()
    } else {
        quoted_input(key)
    }
}

/// The names between backticks in serde's `expected one of `a`, `b``.
fn backticked(list: &str) -> Vec<&str> {
    list.split('`').skip(1).step_by(2).collect()
}

/// Rewrites one of serde's messages about the value at `path`; `whole`
/// names the document when the path is empty.
fn describe(path: &Path, message: &str, whole: &str) -> String {
    let field = field_name(path);
    let subject = field.clone().unwrap_or_else(|| whole.to_owned());
    // A field of the value at `path`: `deltas[0].text`, or just `text`.
    let member = |name: &str| match &field {
        Some(parent) => format!("{parent}.{}", field_label(name)),
        None => field_label(name),
    };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        return format!("{} is required", member(name));
    }
    if let Some(rest) = message.strip_prefix("duplicate field `") {
        let name = rest.split('`').next().unwrap_or_default();
        return format!("{} is given more than once", member(name));
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, known) = rest.split_once('`').unwrap_or((rest, ""));
        // The path already ends at the unknown field.
        let at_field = matches!(path.iter().next_back(), Some(Segment::Map { key }) if key == name);
        let unknown = match &field {
            Some(field) if at_field => field.clone(),
            _ => member(name),
        };
        let known = backticked(known);
        return if known.is_empty() {
            format!("{unknown} is not a known field")
        } else {
            format!(
                "{unknown} is not a known field; known fields: {}",
                known.join(", ")
            )
        };
    }
    if message.starts_with("unknown variant `") {
        let (_, allowed) = message.split_once(", expected").unwrap_or((message, ""));
        let allowed = backticked(allowed);
        return if allowed.is_empty() {
            format!("{subject} is not valid")
        } else {
            format!("{subject} must be one of: {}", allowed.join(", "))
        };
    }
    if message.starts_with("invalid type: ") || message.starts_with("invalid value: ") {
        let expected = message.rsplit_once(", expected ").map(|(_, e)| e);
        return match expected.and_then(plain_expectation) {
            Some(what) => format!("{subject} must be {what}"),
            None => format!("{subject} has the wrong type"),
        };
    }
    if let Some(rest) = message.strip_prefix("invalid length ") {
        // serde also reads a struct from an array of its fields in order.
        return if rest.contains(", expected struct ") {
            format!("{subject} must be a JSON object")
        } else {
            format!("{subject} has the wrong number of items")
        };
    }
    // `FromStr` errors of query-string values (serde_urlencoded parses
    // numbers and booleans with `str::parse`).
    match message {
        "invalid digit found in string" | "cannot parse integer from empty string" => {
            format!("{subject} must be a whole number")
        }
        "number too large to fit in target type" => format!("{subject} is too large"),
        "number too small to fit in target type" => format!("{subject} is too small"),
        "invalid float literal" | "cannot parse float from empty string" => {
            format!("{subject} must be a number")
        }
        "provided string was not `true` or `false`" => format!("{subject} must be true or false"),
        _ if message.starts_with("invalid utf-8") => format!("{subject} is not valid UTF-8"),
        _ => format!("{subject} is not valid"),
    }
}

/// What serde's `expected …` means, in plain words. serde names Rust
/// types (`u64`, `struct TestEvent`); the broker's own visitors already
/// write a phrase (`an array of strings or a comma-separated string`).
fn plain_expectation(expected: &str) -> Option<&str> {
    Some(match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" | "a borrowed string" => "a string",
        "a character" => "a single character",
        "a sequence" => "an array",
        "a map" => "a JSON object",
        "unit" => "null",
        _ if expected.starts_with("struct ") => "a JSON object",
        _ if expected.starts_with("tuple") || expected.starts_with("a tuple") => "an array",
        _ if expected.starts_with("a ") || expected.starts_with("an ") => expected,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        event_type: String,
        persist: Option<bool>,
        batch_size: Option<usize>,
        progress: Option<f64>,
        tags: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        delta: Option<String>,
        status: Option<Status>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Status {
        Running,
        Done,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<usize>,
        ratio: Option<f64>,
        verbose: Option<bool>,
    }

    fn field_error<T: DeserializeOwned + std::fmt::Debug>(body: serde_json::Value) -> String {
        match from_json_slice::<T>(body.to_string().as_bytes()) {
            Err(JsonError::Field(message)) => message,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    fn syntax_error(body: &str) -> String {
        match from_json_slice::<serde_json::Value>(body.as_bytes()) {
            Err(JsonError::Syntax(message)) => message,
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    fn assert_plain(message: &str) {
        for phrase in [
            "expected",
            "invalid type",
            "deserialize",
            "\\u{",
            "at line",
            "usize",
            "u64",
            "f64",
            "struct ",
            "`",
        ] {
            assert!(!message.contains(phrase), "{phrase:?} in {message:?}");
        }
    }

    #[test]
    fn a_wrong_type_names_the_field_and_what_it_must_be() {
        for (body, expected) in [
            (json!({"event_type": 5}), "event_type must be a string"),
            (
                json!({"event_type": "a", "persist": "yes"}),
                "persist must be true or false",
            ),
            (
                json!({"event_type": "a", "batch_size": -1}),
                "batch_size must be a whole number, 0 or more",
            ),
            (
                json!({"event_type": "a", "batch_size": 1.5}),
                "batch_size must be a whole number, 0 or more",
            ),
            (
                json!({"event_type": "a", "progress": "50"}),
                "progress must be a number",
            ),
            (
                json!({"event_type": "a", "tags": "x"}),
                "tags must be an array",
            ),
            (
                json!({"event_type": "a", "tags": ["x", 2]}),
                "tags[1] must be a string",
            ),
            (json!("just a string"), "the body must be a JSON object"),
            (json!([]), "the body must be a JSON object"),
        ] {
            let message = field_error::<Body>(body.clone());
            assert_eq!(message, expected, "{body}");
            assert_plain(&message);
        }
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    #[allow(dead_code)]
    struct AllOptional {
        result: Option<serde_json::Value>,
    }

    #[test]
    fn an_object_body_refuses_other_json_and_tells_it_from_no_json() {
        // serde alone reads `[5]` as `{"result": 5}`.
        assert!(from_json_slice::<AllOptional>(b"[5]").is_ok());
        for body in ["[5]", " [] ", "\"x\"", "5", "null"] {
            assert_eq!(
                from_json_object::<AllOptional>(body.as_bytes()).unwrap_err(),
                JsonError::Field("the body must be a JSON object".into()),
                "{body}"
            );
        }
        assert!(matches!(
            from_json_object::<AllOptional>(b"[5,"),
            Err(JsonError::Syntax(_))
        ));
        assert!(from_json_object::<AllOptional>(b" {\"result\": 5}").is_ok());
    }

    #[test]
    fn a_body_that_is_not_utf8_is_a_syntax_error_even_in_an_ignored_field() {
        let body = b"{\"ignored\": \"a\xFF\"}";
        assert!(serde_json::from_slice::<AllOptional>(body).is_ok());
        assert_eq!(
            from_json_object::<AllOptional>(body).unwrap_err(),
            JsonError::Syntax("the request body is not valid UTF-8 (byte 15)".into())
        );
    }

    #[test]
    fn missing_unknown_and_duplicate_fields_are_named() {
        assert_eq!(field_error::<Body>(json!({})), "event_type is required");
        let unknown = field_error::<Strict>(json!({"deltas": ["a"]}));
        assert_eq!(
            unknown,
            "deltas is not a known field; known fields: delta, status"
        );
        let duplicate = from_json_slice::<Body>(br#"{"event_type":"a","event_type":"b"}"#);
        assert_eq!(
            duplicate.unwrap_err(),
            JsonError::Field("event_type is given more than once".into())
        );
        let variant = field_error::<Strict>(json!({"status": "paused"}));
        assert_eq!(variant, "status must be one of: running, done");
    }

    #[test]
    fn a_broken_document_is_malformed_even_when_a_field_before_the_break_is_unknown() {
        for body in [
            &br#"{"a":"#[..],
            br#"{"a":1}}}}"#,
            br#"{"delta":"x","zz":[[["#,
        ] {
            let refused = from_json_slice::<Strict>(body).unwrap_err();
            assert!(
                matches!(refused, JsonError::Syntax(_)),
                "{}: {refused:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            from_json_slice::<Strict>(br#"{"a":1}"#),
            Err(JsonError::Field(_))
        ));
    }

    #[test]
    fn an_odd_field_name_is_quoted_as_json_not_as_rust() {
        let message = field_error::<Strict>(json!({"a\u{2028}b\n": 1}));
        assert_eq!(
            message,
            "\"a\u{2028}b\\n\" is not a known field; known fields: delta, status"
        );
        assert_plain(&message);
    }

    #[test]
    fn syntax_errors_say_what_is_wrong_and_where_in_plain_words() {
        for (body, reason) in [
            (
                r#"{"event_type":"#,
                "it ends before the document is complete",
            ),
            ("[1, 2", "it ends before the document is complete"),
            ("not json at all", "a value is not JSON"),
            (
                r#"{"a":1,}"#,
                "a comma comes right before a closing bracket",
            ),
            (r#"{"a":1} x"#, "there is more text after the JSON document"),
            (r#"{a:1}"#, "object keys must be strings in double quotes"),
            (r#"{"a" 1}"#, "a colon is missing after an object key"),
            ("[1 2]", "a comma or a closing ] is missing in an array"),
            ("\"a\u{1}\"", "a string holds a raw control character"),
            (r#""\q""#, "a string holds an invalid escape sequence"),
            (r#""\ud83d""#, "a string holds half a character"),
            (r#""\ud83dx""#, "a string holds half a character"),
            (r#""\udc4b""#, "a string holds half a character"),
        ] {
            let message = syntax_error(body);
            assert!(
                message.starts_with("the request body is not valid JSON: ")
                    && message.contains(reason)
                    && message.contains("(line 1, column "),
                "{body}: {message}"
            );
            assert_plain(&message);
        }
    }

    #[test]
    fn a_line_nested_too_deeply_says_so_not_that_it_is_no_object() {
        #[derive(Debug, serde::Deserialize)]
        struct Line {
            #[allow(dead_code)]
            a: serde_json::Value,
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        let shallow = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(
            from_json_line::<Line>(&deep).unwrap_err(),
            JsonError::Syntax(format!("not valid JSON: {NESTED_TOO_DEEPLY}"))
        );
        assert!(from_json_line::<Line>(&shallow).is_ok());
    }

    #[test]
    fn query_values_name_the_parameter() {
        for (query, expected) in [
            ("limit=abc", "limit must be a whole number"),
            ("limit=-1", "limit must be a whole number"),
            ("limit=", "limit must be a whole number"),
            ("limit=99999999999999999999999", "limit is too large"),
            ("ratio=x", "ratio must be a number"),
            ("verbose=maybe", "verbose must be true or false"),
            ("limit=1&limit=2", "limit is given more than once"),
        ] {
            let message = from_query::<Page>(query).unwrap_err();
            assert_eq!(message, expected, "{query}");
            assert_plain(&message);
        }
        let page = from_query::<Page>("limit=5&other=x").unwrap();
        assert_eq!(page.limit, Some(5));
    }

    #[test]
    fn an_unknown_message_is_never_passed_through() {
        let root = serde_path_to_error::deserialize::<_, u8>(serde_json::Value::Null)
            .expect_err("null is not a u8")
            .path()
            .clone();
        assert_eq!(
            describe(
                &root,
                "data did not match any variant of untagged enum X",
                "the body"
            ),
            "the body is not valid"
        );
    }
}
