//! The body of `POST /sse/publish`: one event object, or an array of them,
//! kept as JSON values so that each item is read (and refused) on its own
//! and an error names its position.
//!
//! A `serde_json::Value` keeps the last of a key given twice, so
//! `"project_id":"p1","project_id":"p2"` would publish to `p2` while every
//! other body refuses a field given twice. The document is read here in the
//! one pass that builds its values, noting the first key an event repeats;
//! the check costs a lookup per key, which building the map pays anyway.

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Value, map::Entry};

/// The document, and the first key one of its events gives twice.
#[derive(Debug)]
pub struct EventDocument {
    pub value: Value,
    pub repeated_key: Option<RepeatedKey>,
}

/// A key an event object gives more than once.
#[derive(Debug, PartialEq, Eq)]
pub struct RepeatedKey {
    /// The event's index when the document is an array.
    pub position: Option<usize>,
    pub key: String,
}

impl<'de> Deserialize<'de> for EventDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Shape { in_array: false })
    }
}

/// An item of the array: its own keys are checked, an array inside it is
/// read as a plain value (it is refused as an event anyway).
struct Item(EventDocument);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(Shape { in_array: true })
            .map(Item)
    }
}

struct Shape {
    in_array: bool,
}

fn plain(value: Value) -> EventDocument {
    EventDocument {
        value,
        repeated_key: None,
    }
}

impl<'de> Visitor<'de> for Shape {
    type Value = EventDocument;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object or an array of events")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<EventDocument, E> {
        Ok(plain(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<EventDocument, E> {
        Ok(plain(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<EventDocument, E> {
        Ok(plain(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<EventDocument, E> {
        Ok(plain(Value::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<EventDocument, E> {
        Ok(plain(Value::from(v)))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<EventDocument, E> {
        Ok(plain(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<EventDocument, E> {
        Ok(plain(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<EventDocument, E> {
        Ok(plain(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EventDocument, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        if self.in_array {
            while let Some(item) = seq.next_element::<Value>()? {
                items.push(item);
            }
            return Ok(plain(Value::Array(items)));
        }
        let mut repeated_key = None;
        while let Some(Item(item)) = seq.next_element::<Item>()? {
            if repeated_key.is_none() {
                repeated_key = item.repeated_key.map(|repeated| RepeatedKey {
                    position: Some(items.len()),
                    ..repeated
                });
            }
            items.push(item.value);
        }
        Ok(EventDocument {
            value: Value::Array(items),
            repeated_key,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<EventDocument, A::Error> {
        let mut map = Map::new();
        let mut repeated_key = None;
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value::<Value>()?;
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(slot) if repeated_key.is_none() => {
                    repeated_key = Some(RepeatedKey {
                        position: None,
                        key: slot.key().clone(),
                    });
                }
                Entry::Occupied(_) => {}
            }
        }
        Ok(EventDocument {
            value: Value::Object(map),
            repeated_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> EventDocument {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn an_object_with_distinct_keys_reads_as_serde_json_would() {
        let text = r#"{"event_type":"a","data":{"x":[1,2.5,null,true,"s"]},"persist":false}"#;
        let document = read(text);
        assert_eq!(
            document.value,
            serde_json::from_str::<Value>(text).expect("valid")
        );
        assert_eq!(document.repeated_key, None);
    }

    #[test]
    fn a_key_an_event_gives_twice_is_named_with_its_position() {
        let one = read(r#"{"project_id":"p1","event_type":"a","project_id":"p2"}"#);
        assert_eq!(
            one.repeated_key,
            Some(RepeatedKey {
                position: None,
                key: "project_id".into()
            })
        );
        let many =
            read(r#"[{"event_type":"a"},{"event_type":"b","event_type":"c"},{"x":1,"x":2}]"#);
        assert_eq!(
            many.repeated_key,
            Some(RepeatedKey {
                position: Some(1),
                key: "event_type".into()
            })
        );
        assert_eq!(many.value.as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn keys_repeated_inside_an_events_data_are_the_payloads_own() {
        let document = read(r#"{"event_type":"a","data":{"k":1,"k":2}}"#);
        assert_eq!(document.repeated_key, None);
        assert_eq!(document.value["data"]["k"], 2);
    }

    #[test]
    fn scalars_and_nested_arrays_read_as_values() {
        assert_eq!(read("5").value, Value::from(5));
        assert_eq!(read("null").value, Value::Null);
        assert_eq!(
            read(r#"[[{"a":1,"a":2}]]"#).repeated_key,
            None,
            "an array inside the array is not an event"
        );
    }
}
