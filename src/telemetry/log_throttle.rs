//! A log line that may repeat as fast as requests come (a refusal while the
//! store is down, a failed batch) is let through at most once per period,
//! with the count of the ones held back since, so an outage reads as a few
//! lines a minute instead of thousands a second. What each held-back line
//! said is still counted by the metrics.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// Lets a line through at most once per `every`.
#[derive(Debug)]
pub struct LogThrottle {
    every: Duration,
    state: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    last: Option<Instant>,
    held_back: u64,
}

impl LogThrottle {
    pub const fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::new(Held {
                last: None,
                held_back: 0,
            }),
        }
    }

    /// `Some(lines held back since the last one let through)` when a line
    /// may be logged now; `None` (and one more held back) otherwise.
    pub fn due(&self) -> Option<u64> {
        let now = Instant::now();
        let mut held = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if held
            .last
            .is_some_and(|last| now.duration_since(last) < self.every)
        {
            held.held_back += 1;
            return None;
        }
        held.last = Some(now);
        Some(std::mem::take(&mut held.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_then_the_count_of_those_held_back() {
        let throttle = LogThrottle::new(Duration::from_millis(50));
        assert_eq!(throttle.due(), Some(0));
        assert_eq!(throttle.due(), None);
        assert_eq!(throttle.due(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(throttle.due(), Some(2));
        assert_eq!(throttle.due(), None);
    }
}
