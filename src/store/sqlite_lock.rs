//! One broker per SQLite file. SQLite itself lets several processes share
//! a file, but two brokers on one file do not see each other's events
//! (each routes only its own commits), while their ids interleave: a
//! client's `Last-Event-ID` would then skip the other's events for good.
//! So `serve` holds an exclusive lock on `<file>.lock` while it runs, and
//! a second one on the same file stops at start, saying why. (The lock is
//! the process's, taken in `main`: a broker embedded in a test restarts on
//! its file while the first one's actors may still hold the store.)

use std::{
    fs::{File, OpenOptions, TryLockError},
    path::{Path, PathBuf},
};

use super::{StoreError, migrations::create_parent_directory};

/// Held while the broker serves; dropped, the file is free again.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

impl InstanceLock {
    pub fn acquire(database: &Path) -> Result<Self, StoreError> {
        create_parent_directory(database)?;
        let path = lock_path(&resolved(database));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Open(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(StoreError::Open(format!(
                "another sse-broker serves {} (it holds {}): one broker per SQLite file; \
                 several instances need PostgreSQL and Redis",
                database.display(),
                path.display()
            ))),
            Err(TryLockError::Error(e)) => Err(StoreError::Open(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

/// The file a path names, through symbolic links (of the file and of its
/// directories), so that two spellings of one file take one lock. A file
/// not created yet resolves through its directory.
fn resolved(database: &Path) -> PathBuf {
    if let Ok(file) = database.canonicalize() {
        return file;
    }
    let directory = match database.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match (directory.canonicalize(), database.file_name()) {
        (Ok(directory), Some(name)) => directory.join(name),
        _ => database.to_owned(),
    }
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let scratch = tempfile::tempdir().unwrap();
        let database = scratch.path().join("events.db");

        let first = InstanceLock::acquire(&database).unwrap();
        let refused = InstanceLock::acquire(&database).unwrap_err().to_string();
        drop(first);
        let again = InstanceLock::acquire(&database);

        assert!(refused.contains("another sse-broker serves"), "{refused}");
        assert!(again.is_ok(), "{again:?}");
    }

    #[test]
    fn a_symbolic_link_to_the_file_takes_the_same_lock() {
        let scratch = tempfile::tempdir().unwrap();
        let database = scratch.path().join("events.db");
        std::fs::write(&database, b"").unwrap();
        let link = scratch.path().join("link.db");
        std::os::unix::fs::symlink(&database, &link).unwrap();

        let _first = InstanceLock::acquire(&database).unwrap();
        let through_the_link = InstanceLock::acquire(&link);

        assert!(through_the_link.is_err(), "{through_the_link:?}");
    }
}
