//! The broker's open file descriptors, counted in `/proc/PID/fd`
//! (`--broker-pid`): every stream holds a socket, so a count that does not
//! come back down once streams close is a leak.

use anyhow::{Context, Result};

/// Entries of `/proc/PID/fd`, or `None` without a pid.
pub fn open_fds(pid: Option<u32>) -> Result<Option<u64>> {
    let Some(pid) = pid else {
        return Ok(None);
    };
    let path = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&path)
        .with_context(|| format!("listing {path} (is --broker-pid the broker's pid?)"))?;
    // An fd closed while the directory is read is simply not counted.
    Ok(Some(entries.filter(Result::is_ok).count() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_opened_here_are_counted() {
        let pid = Some(std::process::id());
        let before = open_fds(pid).unwrap().unwrap();
        let files: Vec<_> = (0..64)
            .map(|_| std::fs::File::open("/proc/self/status").unwrap())
            .collect();
        let during = open_fds(pid).unwrap().unwrap();
        drop(files);
        // Tests running alongside may close a few fds of their own meanwhile.
        assert!(
            during >= before + 54,
            "{before} before, {during} with 64 more"
        );
        assert_eq!(open_fds(None).unwrap(), None);
    }
}
