//! An app's own metadata of the message an answer is (the AI SDK's
//! `messageMetadata`, on the `start`, `message-metadata` and `finish` parts
//! of a UI message stream: a model's name, when the answer began, the
//! tokens it took). The SDK's reader merges each part's into the message's
//! `metadata` ([`merge_metadata`], its `mergeObjects`); a task keeps each
//! one that changes what is merged as a `message_metadata` event, and a
//! viewer who catches up gets them merged into as few as merge the same
//! ([`merges_as_one`]): one, unless a value changed kind.

use serde_json::{Map, Value};

/// The event type a task's stream carries it as.
pub const MESSAGE_METADATA_EVENT_TYPE: &str = "message_metadata";

/// `said` if it reads as message metadata (`None` when absent or null):
/// an object, as every app's metadata is. Anything else is refused: the
/// SDK would merge a string or an array into the message's metadata key
/// by key (character by character), which no app means.
pub fn checked_message_metadata(
    said: Option<Value>,
    named: impl FnOnce() -> String,
) -> Result<Option<Map<String, Value>>, String> {
    match said {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(metadata)) => Ok(Some(metadata)),
        Some(_) => Err(format!("{} must be an object", named())),
    }
}

/// Merges `overrides` into `base` as the AI SDK's `mergeObjects` does: a
/// key of `overrides` replaces `base`'s, but where both are objects they
/// merge, deeply; arrays and other values are replaced whole. Keys the SDK
/// never copies (`__proto__`, `constructor`, `prototype`) are skipped.
/// Answers whether `base` changed.
pub fn merge_metadata(base: &mut Map<String, Value>, overrides: &Map<String, Value>) -> bool {
    let mut changed = false;
    for (key, value) in overrides {
        if matches!(key.as_str(), "__proto__" | "constructor" | "prototype") {
            continue;
        }
        match (base.get_mut(key), value) {
            (Some(Value::Object(inner)), Value::Object(over)) => {
                changed |= merge_metadata(inner, over);
            }
            (Some(same), _) if same == value => {}
            _ => {
                base.insert(key.clone(), value.clone());
                changed = true;
            }
        }
    }
    changed
}

/// Whether merging `first` then `then` into any metadata gives what
/// merging `first` merged with `then` gives, so a reader who missed both
/// may get them as one. It does unless `then` has an object where `first`
/// has something else: `first`'s value replaced the reader's (its `null`
/// dropped an object's keys), and `then`'s object would merge into the
/// reader's old object instead.
pub fn merges_as_one(first: &Map<String, Value>, then: &Map<String, Value>) -> bool {
    then.iter()
        .all(|(key, value)| match (first.get(key), value) {
            (Some(Value::Object(inner)), Value::Object(over)) => merges_as_one(inner, over),
            (Some(_), Value::Object(_)) => false,
            _ => true,
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("an object"),
        }
    }

    #[test]
    fn objects_merge_deeply_and_everything_else_is_replaced_as_the_sdk_does() {
        let mut base = object(json!({
            "model": "gpt-x",
            "usage": { "input": 3, "output": 1 },
            "tags": ["a", "b"],
            "note": { "x": 1 },
        }));
        let changed = merge_metadata(
            &mut base,
            &object(json!({
                "usage": { "output": 9 },
                "tags": ["c"],
                "note": "replaced",
                "createdAt": 5,
                "__proto__": { "polluted": true },
            })),
        );
        assert!(changed);
        assert_eq!(
            Value::Object(base),
            json!({
                "model": "gpt-x",
                "usage": { "input": 3, "output": 9 },
                "tags": ["c"],
                "note": "replaced",
                "createdAt": 5,
            })
        );
    }

    #[test]
    fn a_merge_that_changes_nothing_says_so() {
        let mut base = object(json!({ "createdAt": 5, "usage": { "input": 3 } }));
        assert!(!merge_metadata(
            &mut base,
            &object(json!({ "createdAt": 5, "usage": {} }))
        ));
        assert!(!merge_metadata(
            &mut base,
            &object(json!({ "usage": { "input": 3 } }))
        ));
        assert!(merge_metadata(&mut base, &object(json!({ "usage": null }))));
        assert_eq!(base["usage"], Value::Null);
    }

    /// Merging `said` into `base` one after the other.
    fn merged(base: Value, said: &[Value]) -> Value {
        let mut base = object(base);
        for one in said {
            merge_metadata(&mut base, &object(one.clone()));
        }
        Value::Object(base)
    }

    #[test]
    fn two_merge_as_one_unless_an_object_follows_what_replaced_one() {
        let held = json!({ "err": { "code": 1, "msg": "a" }, "n": 1 });
        for (first, then, as_one) in [
            (json!({ "n": 2 }), json!({ "err": { "code": 2 } }), true),
            (
                json!({ "err": { "code": 3 } }),
                json!({ "err": { "code": 2 } }),
                true,
            ),
            (
                json!({ "err": null }),
                json!({ "err": { "code": 2 } }),
                false,
            ),
            (
                json!({ "err": [1] }),
                json!({ "err": { "code": 2 } }),
                false,
            ),
            (json!({ "err": null }), json!({ "err": 5 }), true),
        ] {
            assert_eq!(
                merges_as_one(&object(first.clone()), &object(then.clone())),
                as_one,
                "{first} then {then}"
            );
            let one = merged(first.clone(), std::slice::from_ref(&then));
            let apart = merged(held.clone(), &[first.clone(), then.clone()]);
            assert_eq!(
                merged(held.clone(), &[one]) == apart,
                as_one,
                "{first} then {then}: merged as one is what merging both gives, exactly when said so"
            );
        }
    }

    #[test]
    fn only_an_object_reads_as_message_metadata() {
        let named = || "a finish part's messageMetadata".to_owned();
        assert_eq!(checked_message_metadata(None, named), Ok(None));
        assert_eq!(checked_message_metadata(Some(Value::Null), named), Ok(None));
        assert_eq!(
            checked_message_metadata(Some(json!({ "a": 1 })), named),
            Ok(Some(object(json!({ "a": 1 }))))
        );
        for wrong in [json!("x"), json!([1]), json!(3)] {
            assert_eq!(
                checked_message_metadata(Some(wrong), named),
                Err("a finish part's messageMetadata must be an object".to_owned())
            );
        }
    }
}
