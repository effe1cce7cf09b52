//! An upload's pulse: a producer whose upload stays open and sends, but
//! nothing a task keeps (a provider's pings while its model searches the
//! web or runs a server-side tool, keep-alive comments), is alive. The
//! TaskReaper judges silence by the task's row, which only writes move, so
//! such an upload has the row rewritten (`TaskChange::KeepAlive`) every so
//! often, well within the orphan timeout.

use tokio::time::{Duration, Instant};

use super::generation_input::Instruction;

pub(super) struct Pulse {
    /// When the upload last wrote to its task, or began.
    last_write: Instant,
    every: Duration,
}

impl Pulse {
    pub fn new(every: Duration) -> Self {
        Self {
            last_write: Instant::now(),
            every,
        }
    }

    /// Takes a read of `bytes` that gave `instructions` at `now`; whether
    /// the task's row is due a keep-alive. `holding`: text waits to be
    /// written, which will write the row itself.
    pub fn due(
        &mut self,
        now: Instant,
        bytes: usize,
        instructions: &[(u64, Instruction)],
        holding: bool,
    ) -> bool {
        let writes = instructions
            .iter()
            .any(|(_, instruction)| !matches!(instruction, Instruction::Nothing));
        let due =
            !writes && bytes > 0 && !holding && now.duration_since(self.last_write) >= self.every;
        if writes || due {
            self.last_write = now;
        }
        due
    }
}
