//! Where an upload's parts of text end. The AI SDK's stream writes its text
//! in parts (`text-start` … `text-end`), and a message keeps each apart: two
//! paragraphs written as two parts, a source cited between them. A task's
//! stream joins text of one kind into one part until something ends it (a
//! tool call, a step's end, text of the other kind: see
//! `domain::ui_message_stream`), so a part's end is kept (a `text_end` or
//! `reasoning_end` event) only where it tells something: before more text
//! of its kind, or before a source, file or data part, which would
//! otherwise land after the text that follows it. An end followed by
//! anything that ends the part anyway is dropped, and most answers store
//! none.
//!
//! An answer may come in several uploads (one dropped and the rest sent
//! again, one per step, each to any instance): an end still waiting when
//! an upload stops is kept then, since what follows comes in another
//! upload, and an end before an upload's first text is taken as parting
//! that text from the task's. An upload cannot know which part the task's
//! stream holds open (another instance may have written its text since
//! this one last saw it), and an end that parts nothing is ignored by
//! viewers; a first upload never begins with an end.

use crate::domain::TextKind;

use super::generation_input::Instruction;

/// Applies an upload's text parts' ends to what it reads, one read at a
/// time: an end waits for what comes next, in this read or a later one.
#[derive(Debug, Default)]
pub(super) struct TextPartEnds {
    open: Open,
    /// An end read but not yet kept: its line and the kind it ends.
    waiting: Option<(u64, TextKind)>,
}

/// The part a viewer's stream holds open.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    /// Text of this kind came last, and nothing ended it since.
    Kind(TextKind),
    /// Before the upload's first instruction: the task's own text may end
    /// in a part of either kind.
    #[default]
    Unknown,
}

impl Open {
    fn may_be(self, kind: TextKind) -> bool {
        self == Self::Unknown || self == Self::Kind(kind)
    }
}

impl TextPartEnds {
    /// One read's instructions, in place: each `TextEnd` taken out, and
    /// put back before the instruction that needs it. Most reads (a token
    /// each) are left as they are, with nothing moved or allocated.
    pub fn apply(&mut self, read: &mut Vec<(u64, Instruction)>) {
        let mut at = 0;
        while let Some((line, instruction)) = read.get(at) {
            match self.take(*line, instruction) {
                Verdict::Keep => at += 1,
                Verdict::Drop => {
                    read.remove(at);
                }
                Verdict::EndFirst(line, kind) => {
                    read.insert(at, (line, Instruction::TextEnd(kind)));
                    at += 2;
                }
            }
        }
    }

    /// The upload stops here: an end still waiting is kept, as what
    /// follows it would come in another upload.
    pub fn stop(&mut self, read: &mut Vec<(u64, Instruction)>) {
        if let Some((line, kind)) = self.waiting.take() {
            read.push((line, Instruction::TextEnd(kind)));
            self.open = Open::None;
        }
    }

    /// What becomes of `instruction`, read on `line`.
    fn take(&mut self, line: u64, instruction: &Instruction) -> Verdict {
        match instruction {
            Instruction::TextEnd(kind) => {
                if self.open.may_be(*kind) {
                    self.waiting = Some((line, *kind));
                }
                return Verdict::Drop;
            }
            Instruction::Delta(delta) if delta.text.is_empty() => {}
            Instruction::Delta(delta) => {
                let end = match self.waiting.take() {
                    Some((line, kind)) if kind == delta.kind => Verdict::EndFirst(line, kind),
                    _ => Verdict::Keep,
                };
                self.open = Open::Kind(delta.kind);
                return end;
            }
            // A part written inside a part of text leaves it open.
            Instruction::Part(_) => {
                if let Some((line, kind)) = self.waiting.take() {
                    self.open = Open::None;
                    return Verdict::EndFirst(line, kind);
                }
            }
            Instruction::Progress { .. } | Instruction::Nothing => {}
            Instruction::Tool(_)
            | Instruction::StepEnd { .. }
            | Instruction::Complete { .. }
            | Instruction::Fail { .. }
            | Instruction::Cancel => {
                self.open = Open::None;
                self.waiting = None;
            }
        }
        Verdict::Keep
    }
}

/// What becomes of one instruction of a read.
enum Verdict {
    Keep,
    Drop,
    /// Kept, after the waiting end of the part of `TextKind`, on its line.
    EndFirst(u64, TextKind),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::AnswerPart;

    fn answer(text: &str) -> Instruction {
        Instruction::answer(text)
    }

    fn end(kind: TextKind) -> Instruction {
        Instruction::TextEnd(kind)
    }

    fn source() -> Instruction {
        let part = AnswerPart::url_source("s1", "https://example.com", None, "a source")
            .expect("a well-formed source");
        Instruction::Part(part)
    }

    /// `reads` applied one after the other, the lines left out.
    fn applied(reads: Vec<Vec<Instruction>>) -> Vec<Instruction> {
        let mut ends = TextPartEnds::default();
        let mut out = Vec::new();
        for read in reads {
            let mut read: Vec<(u64, Instruction)> = read.into_iter().map(|i| (1, i)).collect();
            ends.apply(&mut read);
            out.extend(read.into_iter().map(|(_, instruction)| instruction));
        }
        out
    }

    #[test]
    fn an_end_is_kept_before_more_text_of_its_kind_and_before_an_answer_part() {
        let paragraphs = applied(vec![vec![
            answer("One."),
            end(TextKind::Answer),
            answer("Two."),
            end(TextKind::Answer),
        ]]);
        assert_eq!(
            paragraphs,
            [answer("One."), end(TextKind::Answer), answer("Two.")]
        );
        let cited = applied(vec![
            vec![answer("One."), end(TextKind::Answer)],
            vec![source()],
            vec![answer("Two.")],
        ]);
        assert_eq!(
            cited,
            [
                answer("One."),
                end(TextKind::Answer),
                source(),
                answer("Two.")
            ]
        );
        // A source inside a part leaves it open: its end still tells.
        let inside = applied(vec![vec![
            answer("One."),
            source(),
            answer("Two."),
            end(TextKind::Answer),
            answer("Three."),
        ]]);
        assert_eq!(
            inside,
            [
                answer("One."),
                source(),
                answer("Two."),
                end(TextKind::Answer),
                answer("Three.")
            ]
        );
    }

    /// Each upload's reads applied, the upload stopping after its last.
    fn uploads(uploads: Vec<Vec<Instruction>>) -> Vec<Vec<Instruction>> {
        uploads
            .into_iter()
            .map(|upload| {
                let mut ends = TextPartEnds::default();
                let mut read: Vec<(u64, Instruction)> =
                    upload.into_iter().map(|i| (1, i)).collect();
                ends.apply(&mut read);
                ends.stop(&mut read);
                read.into_iter()
                    .map(|(_, instruction)| instruction)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn an_answer_cut_into_two_uploads_at_a_parts_end_keeps_it() {
        let complete = Instruction::Complete { result: None };
        // The first upload stops after the end: it is kept then.
        let after_the_end = uploads(vec![
            vec![answer("One."), end(TextKind::Answer)],
            vec![answer("Two."), complete.clone()],
        ]);
        assert_eq!(
            after_the_end,
            [
                vec![answer("One."), end(TextKind::Answer)],
                vec![answer("Two."), complete.clone()]
            ]
        );
        // The first upload stops before the end: the next one's end parts
        // its text from the task's, of either kind.
        for kind in [TextKind::Answer, TextKind::Reasoning] {
            let more = Instruction::Delta(crate::services::tasks::Delta {
                text: "Two.".into(),
                seq: None,
                kind,
            });
            let before_the_end = uploads(vec![
                vec![answer("One.")],
                vec![end(kind), more.clone(), complete.clone()],
            ]);
            assert_eq!(
                before_the_end[1],
                [end(kind), more, complete.clone()],
                "{kind:?}"
            );
        }
        // An upload that ends its task, or only text, stores no end.
        let whole = uploads(vec![vec![
            answer("One."),
            end(TextKind::Answer),
            complete.clone(),
        ]]);
        assert_eq!(whole, [vec![answer("One."), complete]]);
        assert_eq!(uploads(vec![vec![answer("One.")]]), [vec![answer("One.")]]);
    }

    #[test]
    fn an_end_that_tells_nothing_is_dropped() {
        let complete = Instruction::Complete { result: None };
        let step_end = Instruction::StepEnd { result: None };
        let progress = Instruction::Progress {
            progress: Some(50.0),
            stage: None,
            message: None,
            force: false,
        };
        let thinking = Instruction::reasoning("Hm.");
        let ended_anyway = applied(vec![
            vec![answer("One."), end(TextKind::Answer)],
            vec![progress.clone(), step_end.clone(), answer("Two.")],
            vec![end(TextKind::Answer), complete.clone()],
        ]);
        assert_eq!(
            ended_anyway,
            [answer("One."), progress, step_end, answer("Two."), complete]
        );
        // A change of kind ends the part itself; an end of a part never
        // begun, or of the other kind, ends nothing.
        let kinds = applied(vec![vec![
            end(TextKind::Answer),
            thinking.clone(),
            end(TextKind::Answer),
            end(TextKind::Reasoning),
            answer("One."),
            answer(""),
            end(TextKind::Reasoning),
            source(),
        ]]);
        assert_eq!(kinds, [thinking, answer("One."), answer(""), source()]);
        let tool = crate::domain::ToolEvent::call("c1", "search", json!({}), "a call")
            .expect("a well-formed call");
        let before_a_tool = applied(vec![vec![
            answer("One."),
            end(TextKind::Answer),
            Instruction::Tool(tool.clone()),
            answer("Two."),
        ]]);
        assert_eq!(
            before_a_tool,
            [answer("One."), Instruction::Tool(tool), answer("Two.")]
        );
    }
}
