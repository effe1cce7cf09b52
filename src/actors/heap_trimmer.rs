//! `HeapTrimmer`: hands the memory glibc's allocator holds free back to the
//! operating system, and reports how much it holds.
//!
//! glibc returns memory to the system only from the top of its heaps. Once
//! thousands of streams have come and gone, their freed buffers lie between
//! blocks still in use (the replay cache, long-lived streams), so the
//! process keeps them resident: in a churn soak RSS stayed at its peak after
//! every stream had closed, with most of it free inside the allocator.
//! `malloc_trim` releases every whole free page wherever it lies. Every
//! [`CHECK_EVERY`] this actor reads the allocator's counters into
//! `sse_heap_bytes{state}` (so "leak or retention?" is a glance at a
//! dashboard) and trims when at least [`TRIM_FREE_BYTES`] lie free.
//!
//! Only on glibc (Linux, `target_env = "gnu"`); other allocators manage
//! this themselves, and the actor is not started there.

use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};

use crate::telemetry::Metrics;

/// How often the allocator's counters are read (a walk over its free lists:
/// microseconds).
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// Free memory inside the allocator worth a trim. Below it the pages are
/// likely reused soon, and a trim would only cost page faults later.
const TRIM_FREE_BYTES: usize = 8 << 20;
/// At most one trim per this period: a trim locks each arena while it walks
/// it.
const TRIM_AT_MOST_EVERY: Duration = Duration::from_secs(30);

/// What the allocator holds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    pub in_use: usize,
    pub free: usize,
}

/// The allocator's own count, summed over its arenas.
pub fn heap_usage() -> HeapUsage {
    // SAFETY: `mallinfo2` only reads the allocator's statistics (taking
    // each arena's lock); it has no preconditions.
    let info = unsafe { libc::mallinfo2() };
    HeapUsage {
        // Blocks handed out from the heaps, and those mapped on their own.
        in_use: info.uordblks + info.hblkhd,
        free: info.fordblks,
    }
}

/// Releases every whole free page back to the system; true when any was.
fn trim() -> bool {
    // SAFETY: `malloc_trim` takes each arena's lock; no preconditions.
    unsafe { libc::malloc_trim(0) == 1 }
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
        // Off the actor's thread: the trim takes a few milliseconds on a
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
            act.metrics.record_heap_trim();
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

    #[test]
    fn freed_memory_shows_as_free_and_a_trim_returns_it_to_the_system() {
        // Many small blocks, then every other one freed: the free half lies
        // between blocks still in use, where glibc never returns it alone.
        let mut blocks: Vec<Vec<u8>> = (0..40_000).map(|_| vec![1u8; 1024]).collect();
        let in_use = heap_usage();
        let mut kept = Vec::with_capacity(blocks.len() / 2);
        for (i, block) in blocks.drain(..).enumerate() {
            if i % 64 != 0 {
                drop(block);
            } else {
                kept.push(block);
            }
        }
        let freed = heap_usage();
        assert!(
            freed.free >= in_use.free + (30 << 20),
            "about 39 MiB freed shows as free: {in_use:?} then {freed:?}"
        );
        let before = resident_bytes().expect("statm readable");
        trim();
        let after = resident_bytes().expect("statm readable");
        assert!(
            after + (16 << 20) <= before,
            "a trim gives back the free pages between the kept blocks: {before} → {after} bytes"
        );
        assert_eq!(kept.len(), 625);
    }
}
