//! What the instructions an upload's reads carry become before they are
//! applied, in order: where its steps and its answer end
//! (`upload_steps`), where its parts of text end (`upload_text_parts`),
//! and which of its message metadata changes anything
//! (`upload_message_metadata`). Each keeps what it needs of the reads
//! before.

use super::{
    generation_input::{Instruction, UploadEnds},
    upload_message_metadata::MessageMetadataSaid,
    upload_steps::StepEnds,
    upload_text_parts::TextPartEnds,
};

pub(super) struct ReadRules {
    /// What the stream's end marker ends, and the reason a step keeps.
    steps: StepEnds,
    /// Where the parts of text end.
    text_parts: TextPartEnds,
    /// The message's metadata said so far.
    message_metadata: MessageMetadataSaid,
}

impl ReadRules {
    /// The rules of an upload whose end marker ends what `ends` says, of
    /// an event-stream body or not.
    pub(super) fn new(ends: UploadEnds, event_stream: bool) -> Self {
        Self {
            steps: StepEnds::new(ends, event_stream),
            text_parts: TextPartEnds::default(),
            message_metadata: MessageMetadataSaid::default(),
        }
    }

    /// The body turned out to be a provider's or the AI SDK's stream (see
    /// [`StepEnds::read_a_stream`]).
    pub(super) fn read_a_stream(&mut self) {
        self.steps.read_a_stream();
    }

    /// Applies the rules to one read's instructions; `stopping`: the upload
    /// reads nothing after them.
    pub(super) fn apply(&mut self, read: &mut Vec<(u64, Instruction)>, stopping: bool) {
        self.steps.apply(read, stopping);
        self.text_parts.apply(read);
        if stopping {
            self.text_parts.stop(read);
        }
        self.message_metadata.apply(read);
    }
}
