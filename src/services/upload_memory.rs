//! The memory all of an instance's uploads may hold in unfinished lines.
//!
//! One upload holds at most `--max-upload-line-bytes` (4 MiB) of a line,
//! an event or a tool call's input until it ends, but nothing bounded how
//! many did so at once: a few hundred producers each holding a long
//! unfinished line could take the process's memory. Each upload holds its
//! first [`FREE_BYTES`] for nothing (a token or a provider's chunk is far
//! smaller, so a healthy upload never touches the budget); past that it
//! takes blocks of [`BLOCK_BYTES`] from one budget of
//! `--upload-memory-mib`, and an upload that cannot get its next block is
//! refused (`503 upload_memory_full`) after the lines it had read are
//! applied. Blocks go back as soon as the upload's buffers shrink, and all
//! of them when it ends.
//!
//! One producer (a token's subject, with authentication on) may hold at
//! most half the budget across its uploads: on a broker shared by tenants,
//! one tenant's long lines leave the other half to everyone else.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use crate::{domain::UserId, telemetry::Metrics};

/// What every upload holds without counting it.
pub const FREE_BYTES: usize = 64 * 1024;
/// The budget is taken and given back in blocks of this many bytes, so an
/// upload's long line touches the shared count once per block, not once
/// per chunk.
pub const BLOCK_BYTES: usize = 64 * 1024;

/// The budget, shared by every upload of the instance.
#[derive(Clone)]
pub struct UploadMemory {
    inner: Arc<Budget>,
}

struct Budget {
    limit: usize,
    held: AtomicUsize,
    /// What each producer holds; only touched when an upload takes or
    /// gives back a block, never per token.
    by_owner: Mutex<HashMap<UserId, usize>>,
    metrics: Metrics,
}

/// The budget an upload could not get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UploadMemoryFull {
    #[error(
        "the uploads' memory budget ({limit_mib} MiB of unfinished lines, --upload-memory-mib) is spent; the lines before this answer are applied: retry the rest, numbered with seq"
    )]
    Budget { limit_mib: usize },
    #[error(
        "this producer's uploads hold half the uploads' memory budget ({limit_mib} MiB of unfinished lines, --upload-memory-mib), the most one producer may; the lines before this answer are applied: retry the rest, numbered with seq, once its other uploads have finished their lines"
    )]
    OwnerShare { limit_mib: usize },
}

impl UploadMemory {
    /// A budget of `limit_bytes` bytes beyond each upload's free part.
    pub fn new(limit_bytes: usize, metrics: Metrics) -> Self {
        Self {
            inner: Arc::new(Budget {
                limit: limit_bytes,
                held: AtomicUsize::new(0),
                by_owner: Mutex::default(),
                metrics,
            }),
        }
    }

    /// Bytes held by all uploads beyond their free parts.
    pub fn held(&self) -> usize {
        self.inner.held.load(Ordering::Relaxed)
    }

    /// The part of the budget one upload of `owner` holds, nothing to
    /// begin with. `None` (authentication off): no producer's share applies.
    pub fn hold(&self, owner: Option<UserId>) -> UploadMemoryHold {
        UploadMemoryHold {
            budget: self.clone(),
            owner,
            blocks: 0,
        }
    }

    /// Takes `bytes` for `owner` unless that would pass the limit or the
    /// owner's share.
    fn take(&self, owner: Option<&UserId>, bytes: usize) -> Result<(), UploadMemoryFull> {
        let budget = &self.inner;
        let limit_mib = budget.limit.div_ceil(1024 * 1024);
        let mut by_owner = owner.map(|_| {
            budget
                .by_owner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        });
        if let (Some(owner), Some(by_owner)) = (owner, &by_owner) {
            let held = by_owner.get(owner).copied().unwrap_or(0);
            if held + bytes > budget.limit / 2 {
                return Err(UploadMemoryFull::OwnerShare { limit_mib });
            }
        }
        budget
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(bytes)
                    .filter(|&after| after <= budget.limit)
            })
            .map_err(|_| UploadMemoryFull::Budget { limit_mib })?;
        if let (Some(owner), Some(by_owner)) = (owner, &mut by_owner) {
            *by_owner.entry(owner.clone()).or_default() += bytes;
        }
        budget.metrics.record_upload_memory(bytes as i64);
        Ok(())
    }

    fn give_back(&self, owner: Option<&UserId>, bytes: usize) {
        if let Some(owner) = owner {
            let mut by_owner = self
                .inner
                .by_owner
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(held) = by_owner.get_mut(owner) {
                *held = held.saturating_sub(bytes);
                if *held == 0 {
                    by_owner.remove(owner);
                }
            }
        }
        self.inner.held.fetch_sub(bytes, Ordering::Relaxed);
        self.inner.metrics.record_upload_memory(-(bytes as i64));
    }
}

/// What one upload holds of the budget; given back when dropped.
pub struct UploadMemoryHold {
    budget: UploadMemory,
    owner: Option<UserId>,
    blocks: usize,
}

impl UploadMemoryHold {
    /// Makes the hold cover an upload whose buffers take `bytes`: takes
    /// the blocks it lacks, or gives back those it no longer needs. When
    /// the budget cannot cover it, the hold stays as it was.
    pub fn cover(&mut self, bytes: usize) -> Result<(), UploadMemoryFull> {
        let needed = bytes.saturating_sub(FREE_BYTES).div_ceil(BLOCK_BYTES);
        if needed > self.blocks {
            self.budget
                .take(self.owner.as_ref(), (needed - self.blocks) * BLOCK_BYTES)?;
        } else if needed < self.blocks {
            self.budget
                .give_back(self.owner.as_ref(), (self.blocks - needed) * BLOCK_BYTES);
        }
        self.blocks = needed;
        Ok(())
    }
}

impl Drop for UploadMemoryHold {
    fn drop(&mut self) {
        if self.blocks > 0 {
            self.budget
                .give_back(self.owner.as_ref(), self.blocks * BLOCK_BYTES);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(blocks: usize) -> UploadMemory {
        UploadMemory::new(blocks * BLOCK_BYTES, Metrics::new("unit", None))
    }

    #[test]
    fn the_free_part_takes_nothing_and_more_takes_whole_blocks() {
        let memory = budget(4);
        let mut hold = memory.hold(None);
        hold.cover(FREE_BYTES).unwrap();
        assert_eq!(memory.held(), 0);
        hold.cover(FREE_BYTES + 1).unwrap();
        assert_eq!(memory.held(), BLOCK_BYTES);
        hold.cover(FREE_BYTES + 2 * BLOCK_BYTES).unwrap();
        assert_eq!(memory.held(), 2 * BLOCK_BYTES);
        hold.cover(10).unwrap();
        assert_eq!(memory.held(), 0, "a shrunk buffer gives its blocks back");
    }

    #[test]
    fn an_upload_past_the_budget_is_refused_and_keeps_what_it_held() {
        let memory = budget(3);
        let mut first = memory.hold(None);
        first.cover(FREE_BYTES + 2 * BLOCK_BYTES).unwrap();
        let mut second = memory.hold(None);
        assert_eq!(
            second.cover(FREE_BYTES + 2 * BLOCK_BYTES),
            Err(UploadMemoryFull::Budget { limit_mib: 1 })
        );
        assert_eq!(memory.held(), 2 * BLOCK_BYTES, "a refusal takes nothing");
        second.cover(FREE_BYTES + BLOCK_BYTES).unwrap();
        assert_eq!(memory.held(), 3 * BLOCK_BYTES);
        drop(first);
        assert_eq!(memory.held(), BLOCK_BYTES, "an ended upload gives all back");
        second.cover(FREE_BYTES + 3 * BLOCK_BYTES).unwrap();
        drop(second);
        assert_eq!(memory.held(), 0);
    }

    #[test]
    fn one_producer_holds_at_most_half_and_leaves_the_rest_to_others() {
        let memory = budget(8);
        let alice = || Some(UserId::parse("alice").unwrap());
        let mut first = memory.hold(alice());
        first.cover(FREE_BYTES + 3 * BLOCK_BYTES).unwrap();
        let mut second = memory.hold(alice());
        assert_eq!(
            second.cover(FREE_BYTES + 2 * BLOCK_BYTES),
            Err(UploadMemoryFull::OwnerShare { limit_mib: 1 }),
            "3 + 2 blocks of alice's would pass half of 8"
        );
        second.cover(FREE_BYTES + BLOCK_BYTES).unwrap();

        let mut bob = memory.hold(Some(UserId::parse("bob").unwrap()));
        bob.cover(FREE_BYTES + 4 * BLOCK_BYTES).unwrap();
        assert_eq!(memory.held(), 8 * BLOCK_BYTES);

        drop(first);
        second.cover(FREE_BYTES + 4 * BLOCK_BYTES).unwrap();
        assert!(
            memory.hold(alice()).cover(FREE_BYTES + 1).is_err(),
            "alice holds her half again"
        );
        drop((second, bob));
        assert_eq!(memory.held(), 0);
        assert!(
            memory.inner.by_owner.lock().unwrap().is_empty(),
            "no owner kept once it holds nothing"
        );
    }

    #[test]
    fn without_authentication_the_whole_budget_is_one_producers() {
        let memory = budget(4);
        let mut anonymous = memory.hold(None);
        anonymous.cover(FREE_BYTES + 4 * BLOCK_BYTES).unwrap();
        assert_eq!(memory.held(), 4 * BLOCK_BYTES);
    }
}
