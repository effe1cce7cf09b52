//! `HeapTrimmer`: hands the memory the allocator (jemalloc, see `lib.rs`)
//! holds free back to the operating system, and reports how much it holds.
//!
//! Once thousands of streams have come and gone, their freed buffers stay
//! with the allocator as dirty pages. jemalloc returns them by itself only
//! while it is busy (its decay runs on allocations), so a broker that fell
//! quiet after a storm would keep them resident. Every [`CHECK_EVERY`] this
//! actor reads the allocator's counters into `sse_heap_bytes{state}` (so
//! "leak or retention?" is a glance at a dashboard) and purges every arena
//! when at least [`TRIM_FREE_BYTES`] lie free.
//!
//! Linux only (where jemalloc is the allocator); the actor is not started
//! elsewhere.

use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};

use crate::telemetry::Metrics;

/// How often the allocator's counters are read (a few `mallctl` reads).
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// Free memory inside the allocator worth a purge. Below it the pages are
/// likely reused soon, and a purge would only cost page faults later.
const TRIM_FREE_BYTES: usize = 8 << 20;
/// At most one purge per this period: it walks every arena's free pages.
const TRIM_AT_MOST_EVERY: Duration = Duration::from_secs(30);

/// What the allocator holds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    /// Handed out to the broker.
    pub in_use: usize,
    /// Resident in the allocator's pages but not handed out: freed blocks,
    /// dirty pages kept for reuse, the allocator's own bookkeeping.
    pub free: usize,
}

/// The allocator's own count (its statistics are refreshed first: jemalloc
/// caches them until told to).
pub fn heap_usage() -> HeapUsage {
    use tikv_jemalloc_ctl::{epoch, stats};
    let read = || -> Result<HeapUsage, tikv_jemalloc_ctl::Error> {
        epoch::advance()?;
        let in_use = stats::allocated::read()?;
        let resident = stats::resident::read()?;
        Ok(HeapUsage {
            in_use,
            free: resident.saturating_sub(in_use),
        })
    };
    read().unwrap_or(HeapUsage { in_use: 0, free: 0 })
}

/// Releases every arena's unused pages back to the system.
fn trim() -> bool {
    // `arena.<MALLCTL_ARENAS_ALL>.purge`: a control that takes and gives
    // nothing, so it is called with null pointers (the ctl crate's typed
    // writes pass a value).
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: the name is NUL-terminated; a purge reads and writes no
    // argument, which is what the null pointers and zero length say.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    status == 0
}

/// The process's resident set, in bytes (`/proc/self/statm`).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page_size).ok()?)
}

pub struct HeapTrimmer {
    metrics: Metrics,
    last_trim: Option<Instant>,
    trimming: bool,
}

impl HeapTrimmer {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            last_trim: None,
            trimming: false,
        }
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        let usage = heap_usage();
        self.metrics.set_heap_usage(usage.in_use, usage.free);
        let due = self
            .last_trim
            .is_none_or(|last| last.elapsed() >= TRIM_AT_MOST_EVERY);
        if self.trimming || !due || usage.free < TRIM_FREE_BYTES {
            return;
        }
        self.trimming = true;
        // Off the actor's thread: the purge takes a few milliseconds on a
        // large heap, and this arbiter also runs the Registry.
        let trimmed = tokio::task::spawn_blocking(move || {
            let before = resident_bytes();
            let started = Instant::now();
            let released = trim();
            (released, before, resident_bytes(), started.elapsed())
        });
        ctx.spawn(trimmed.into_actor(self).map(move |outcome, act, _| {
            act.trimming = false;
            act.last_trim = Some(Instant::now());
            let Ok((released, before, after, took)) = outcome else {
                return;
            };
            // `sse_heap_trims_total` counts memory handed back, not attempts.
            if released {
                act.metrics.record_heap_trim();
            }
            let mib = |bytes: Option<u64>| bytes.map_or(0.0, |b| b as f64 / f64::from(1 << 20));
            tracing::debug!(
                released,
                free_mib = usage.free as f64 / f64::from(1 << 20),
                rss_before_mib = mib(before),
                rss_after_mib = mib(after),
                took_ms = took.as_secs_f64() * 1e3,
                "returned free heap memory to the system"
            );
        }));
    }
}

impl Actor for HeapTrimmer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.check(ctx);
        ctx.run_interval(CHECK_EVERY, Self::check);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many small blocks, then all but one in 64 freed: the freed ones lie
    /// between blocks still in use. `Err` says what fell short.
    fn free_then_trim() -> Result<(), String> {
        const BLOCKS: usize = 160 * 1024;
        let mut blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|_| vec![1u8; 1024]).collect();
        let in_use = heap_usage();
        let mut kept = Vec::with_capacity(BLOCKS / 64);
        for (i, block) in blocks.drain(..).enumerate() {
            if i % 64 != 0 {
                drop(block);
            } else {
                kept.push(block);
            }
        }
        let freed = heap_usage();
        if freed.free < in_use.free + (120 << 20) {
            return Err(format!(
                "about 157 MiB freed shows as free: {in_use:?} then {freed:?}"
            ));
        }
        let before = resident_bytes().expect("statm readable");
        assert!(trim(), "jemalloc accepts the purge");
        let after = resident_bytes().expect("statm readable");
        assert_eq!(kept.len(), BLOCKS / 64);
        if after + (96 << 20) > before {
            return Err(format!(
                "a purge gives back the free pages between the kept blocks: {before} → {after} bytes"
            ));
        }
        Ok(())
    }

    #[test]
    fn freed_memory_shows_as_free_and_a_trim_returns_it_to_the_system() {
        // The counters and RSS are the process's, and the other tests of
        // this process allocate and free meanwhile: hence a volume far above
        // what they move, and three tries. A trim that gives nothing back
        // fails all three.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match free_then_trim() {
                Ok(()) => return,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("three tries fell short: {failures:#?}");
    }
}
