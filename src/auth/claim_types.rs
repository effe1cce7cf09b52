//! Which signed claim has the wrong type. serde's error for the claims says
//! what it expected, never of which field; the payload is read again here,
//! only on that error's path, to name the claim.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::Value;

type Reads = fn(&Value) -> bool;

/// Each claim the broker reads, whether a value of it reads, and what a
/// token is told when it does not. `null` reads only where the claim is
/// optional (`Option` fields); `scope` and `projects` default when absent,
/// not when null.
const CLAIMS: [(&str, Reads, &str); 8] = [
    ("sub", Value::is_string, "sub must be a string"),
    (
        "exp",
        is_numeric_date,
        "exp must be a NumericDate: whole seconds since 1970, below 2^64",
    ),
    (
        "nbf",
        is_optional_numeric_date,
        "nbf must be a NumericDate: whole seconds since 1970, below 2^64",
    ),
    (
        "iat",
        is_optional_numeric_date,
        "iat must be a NumericDate: whole seconds since 1970, below 2^64",
    ),
    (
        "scope",
        Value::is_string,
        "scope must be a string of space-separated scopes",
    ),
    (
        "projects",
        is_strings,
        "projects must be an array of project ids (strings)",
    ),
    (
        "aud",
        is_audience,
        "aud must be a string or an array of strings",
    ),
    ("iss", is_optional_string, "iss must be a string"),
];

/// What `token`'s first claim of the wrong type must be; `None` when each
/// claim it holds reads, or when its payload is not a JSON object.
pub(super) fn misread_claim(token: &str) -> Option<&'static str> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let Value::Object(claims) = serde_json::from_slice(&bytes).ok()? else {
        return None;
    };
    CLAIMS
        .iter()
        .find(|(name, reads, _)| claims.get(*name).is_some_and(|value| !reads(value)))
        .map(|(_, _, said)| *said)
}

fn is_numeric_date(value: &Value) -> bool {
    match value {
        Value::Number(number) => {
            number.is_u64() || number.as_f64().is_some_and(|s| s.is_finite() && s >= 0.0)
        }
        _ => false,
    }
}

fn is_optional_numeric_date(value: &Value) -> bool {
    value.is_null() || is_numeric_date(value)
}

fn is_strings(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|items| items.iter().all(Value::is_string))
}

fn is_audience(value: &Value) -> bool {
    value.is_null() || value.is_string() || is_strings(value)
}

fn is_optional_string(value: &Value) -> bool {
    value.is_null() || value.is_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_of(claims: &str) -> String {
        format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(claims))
    }

    #[test]
    fn names_the_claim_of_the_wrong_type() {
        let cases = [
            (r#"{"sub":5,"exp":1}"#, "sub must be"),
            (r#"{"sub":"a","exp":"soon"}"#, "exp must be"),
            (r#"{"sub":"a","exp":-1}"#, "exp must be"),
            (r#"{"sub":"a","exp":1,"nbf":"x"}"#, "nbf must be"),
            (r#"{"sub":"a","exp":1,"iat":true}"#, "iat must be"),
            (
                r#"{"sub":"a","exp":1,"scope":["publish"]}"#,
                "scope must be",
            ),
            (r#"{"sub":"a","exp":1,"scope":null}"#, "scope must be"),
            (r#"{"sub":"a","exp":1,"projects":"p1"}"#, "projects must be"),
            (
                r#"{"sub":"a","exp":1,"projects":["p1",2]}"#,
                "projects must be",
            ),
            (r#"{"sub":"a","exp":1,"aud":7}"#, "aud must be"),
            (r#"{"sub":"a","exp":1,"iss":{}}"#, "iss must be"),
        ];
        for (claims, said) in cases {
            let named = misread_claim(&token_of(claims));
            assert!(
                named.is_some_and(|n| n.starts_with(said)),
                "{claims}: {named:?}"
            );
        }
    }

    #[test]
    fn names_nothing_when_every_claim_reads() {
        let claims = r#"{"sub":"a","exp":1.5,"nbf":null,"scope":"publish","projects":["p1"],
            "aud":["x","y"],"iss":"i","extra":[1]}"#;
        assert_eq!(misread_claim(&token_of(claims)), None);
        assert_eq!(misread_claim("not a token"), None);
        assert_eq!(misread_claim(&token_of("[1,2]")), None);
    }
}
