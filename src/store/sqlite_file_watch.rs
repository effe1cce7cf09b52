//! `FileWatch`: refuses writes once the SQLite file the broker opened is no
//! longer the one at its path.
//!
//! SQLite keeps writing to the file it opened. Deleted while the broker runs
//! (`rm`, a cleanup script) or replaced (a restored backup copied over it),
//! every commit went on succeeding into a file nothing will read again: the
//! publishes were acknowledged, and lost at the next start. So before each
//! write the watch compares, at most once per [`CHECK_EVERY_MS`], the path's
//! device and inode with those it had at start-up; once they differ, the
//! write and every later one fail as the store being unavailable (503
//! `store_unavailable`, `/health` unhealthy, an error in the log) until the
//! broker is restarted on the file now there.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use super::{StoreError, periodic::Periodic};

/// How often a write looks at the path; writes between two looks trust the
/// last one.
const CHECK_EVERY_MS: i64 = 1000;

/// The identity of the file opened at start-up, and what became of it.
#[derive(Debug)]
pub(super) struct FileWatch {
    path: PathBuf,
    opened: Option<FileId>,
    looks: Periodic,
    /// Set once the file was found gone or replaced: for good.
    lost: OnceLock<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    device: u64,
    inode: u64,
}

impl FileWatch {
    /// Watches the file now at `path` (the store has just opened it).
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            opened: file_id(path),
            looks: Periodic::new(CHECK_EVERY_MS),
            lost: OnceLock::new(),
        }
    }

    /// Whether a write may go on: the file at the path is still the one
    /// opened. Looks at most once per [`CHECK_EVERY_MS`].
    pub(super) fn check(&self) -> Result<(), StoreError> {
        if let Some(why) = self.lost.get() {
            return Err(StoreError::Unavailable(why.clone()));
        }
        let Some(opened) = self.opened.filter(|_| self.looks.claim()) else {
            return Ok(());
        };
        let what = match file_id(&self.path) {
            Some(now_there) if now_there == opened => return Ok(()),
            Some(_) => "replaced by another file",
            None => "deleted",
        };
        let why = format!(
            "the SQLite file {} was {what} while the broker runs: writes to the file it \
             opened would be lost; restart the broker",
            self.path.display()
        );
        if self.lost.set(why.clone()).is_ok() {
            tracing::error!(path = %self.path.display(), "{why}");
        }
        Err(StoreError::Unavailable(why))
    }
}

#[cfg(unix)]
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileId {
        device: metadata.dev(),
        inode: metadata.ino(),
    })
}

#[cfg(not(unix))]
fn file_id(_path: &Path) -> Option<FileId> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch_of(path: &Path) -> FileWatch {
        let watch = FileWatch::new(path);
        assert!(watch.check().is_ok(), "the file it opened");
        watch
    }

    /// Lets the next write look again.
    fn look_again(watch: &FileWatch) {
        watch.looks.expire();
    }

    #[test]
    fn a_deleted_or_replaced_file_refuses_writes_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        std::fs::write(&path, b"one").unwrap();

        // Deleted.
        let deleted = watch_of(&path);
        std::fs::remove_file(&path).unwrap();
        look_again(&deleted);
        let refused = deleted.check().unwrap_err().to_string();
        assert!(refused.contains("was deleted"), "{refused}");

        // Replaced: another file at the path, even with the same bytes.
        std::fs::write(&path, b"one").unwrap();
        let replaced = watch_of(&path);
        let other = dir.path().join("restored.db");
        std::fs::write(&other, b"one").unwrap();
        std::fs::rename(&other, &path).unwrap();
        look_again(&replaced);
        let refused = replaced.check().unwrap_err().to_string();
        assert!(refused.contains("replaced by another file"), "{refused}");

        // For good, without looking again.
        assert!(deleted.check().is_err());
        assert!(replaced.check().is_err());
    }

    #[test]
    fn a_file_left_in_place_keeps_writing_and_is_looked_at_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        std::fs::write(&path, b"one").unwrap();
        let watch = watch_of(&path);
        std::fs::write(&path, b"one and more").unwrap();
        look_again(&watch);
        assert!(watch.check().is_ok(), "written to, still the same file");
        // Within the second after a look, writes do not look.
        std::fs::remove_file(&path).unwrap();
        assert!(watch.check().is_ok());
    }
}
