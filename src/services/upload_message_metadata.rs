//! The message's metadata as one upload says it: an app's
//! `messageMetadata` callback may answer for every part of the stream (a
//! `createdAt` with each token), so only what changes the metadata merged
//! so far reaches the task; the rest would cost a write and an event per
//! token and tell a viewer nothing.

use serde_json::{Map, Value};

use super::generation_input::Instruction;
use crate::domain::merge_metadata;

#[derive(Debug, Default)]
pub(super) struct MessageMetadataSaid {
    /// What this upload's metadata merges to so far; `None` before any.
    merged: Option<Map<String, Value>>,
}

impl MessageMetadataSaid {
    /// Turns each `MessageMetadata` of `read` that changes nothing into
    /// `Nothing`.
    pub(super) fn apply(&mut self, read: &mut [(u64, Instruction)]) {
        for (_, instruction) in read {
            let Instruction::MessageMetadata(said) = instruction else {
                continue;
            };
            // The first is taken whole, as the SDK's reader takes it (the
            // keys a merge skips included).
            let changed = match &mut self.merged {
                Some(merged) => merge_metadata(merged, said),
                None => {
                    self.merged = Some(said.clone());
                    !said.is_empty()
                }
            };
            if !changed {
                *instruction = Instruction::Nothing;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn said(value: Value) -> Instruction {
        match value {
            Value::Object(map) => Instruction::MessageMetadata(map),
            _ => panic!("an object"),
        }
    }

    #[test]
    fn metadata_said_again_with_each_part_reaches_the_task_once() {
        let mut seen = MessageMetadataSaid::default();
        let mut read = vec![
            (1, said(json!({ "createdAt": 1, "model": "m" }))),
            (2, Instruction::answer("Hi")),
            (3, said(json!({ "createdAt": 1 }))),
            (4, said(json!({}))),
        ];
        seen.apply(&mut read);
        let mut later = vec![(5, said(json!({ "model": "m", "usage": { "output": 2 } })))];
        seen.apply(&mut later);

        assert_eq!(read[0].1, said(json!({ "createdAt": 1, "model": "m" })));
        assert_eq!(read[1].1, Instruction::answer("Hi"));
        assert_eq!(read[2].1, Instruction::Nothing);
        assert_eq!(read[3].1, Instruction::Nothing);
        assert_eq!(
            later[0].1,
            said(json!({ "model": "m", "usage": { "output": 2 } })),
            "what changes the merge goes as the app said it"
        );
    }

    #[test]
    fn the_first_is_taken_whole_as_the_sdk_takes_it() {
        let mut seen = MessageMetadataSaid::default();
        let first = said(json!({ "prototype": "p" }));
        let mut read = vec![(1, first.clone()), (2, said(json!({ "prototype": "q" })))];
        seen.apply(&mut read);
        let mut empty_first = vec![(3, said(json!({}))), (4, first.clone())];
        MessageMetadataSaid::default().apply(&mut empty_first);

        assert_eq!(read[0].1, first, "a key a merge skips, said first");
        assert_eq!(read[1].1, Instruction::Nothing, "merged: skipped");
        assert_eq!(
            empty_first.iter().map(|(_, i)| i).collect::<Vec<_>>(),
            [&Instruction::Nothing, &Instruction::Nothing],
            "after an empty first, a merge skips it as the SDK's does"
        );
    }
}
