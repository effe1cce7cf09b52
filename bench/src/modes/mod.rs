//! The modes; each file runs its mode and defines its report.

pub mod fanout;
pub mod idle;
pub mod publish;
pub mod saturate;
pub mod soak;
pub mod storm;
pub mod tokens;

/// File descriptors set aside for the runtime, stdio and stray sockets.
const SPARE_FDS: u64 = 64;

/// How a completed run turned out; errors that stop a run are `Err` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The run completed but the broker lost, duplicated or reordered
    /// deliveries, dropped streams or refused publishes.
    Faults,
}

/// Raises the soft open-file limit to the hard one, and warns when even that
/// is below what the run needs.
fn ensure_fd_budget(needed: u64) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < needed => eprintln!(
            "sse-bench: warning: the open-file limit is {limit} but this run needs about {needed}; \
             connections past the limit will fail"
        ),
        Ok(_) => {}
        Err(error) => eprintln!("sse-bench: warning: cannot raise the open-file limit: {error}"),
    }
}
