//! The broker's CPU time, read from `/proc/PID/stat` (`--broker-pid`).

use anyhow::{Context, Result};

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`), 100 on every
/// Linux architecture the bench runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds the broker has used, every thread together;
/// `None` without `--broker-pid`.
pub fn cpu_seconds(pid: Option<u32>) -> Result<Option<f64>> {
    let Some(pid) = pid else {
        return Ok(None);
    };
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (is --broker-pid the broker's pid?)"))?;
    parse_stat(&stat)
        .map(Some)
        .with_context(|| format!("{path} has no utime and stime"))
}

/// utime and stime are fields 14 and 15; the command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after its `)`.
fn parse_stat(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_past_a_name_with_spaces() {
        let stat = "4242 (sse broker) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 3 0";
        assert_eq!(parse_stat(stat), Some(1.75));
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        let seconds = cpu_seconds(Some(std::process::id())).unwrap().unwrap();
        assert!(seconds >= 0.0);
        assert_eq!(cpu_seconds(None).unwrap(), None);
    }
}
