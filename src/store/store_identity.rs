//! A store's identity in a cluster's messages (see
//! `actors::redis_bridge::strangers`): a random number drawn by the first
//! instance that opens the store, kept in `broker_state`. A copy of the
//! store (a staging database restored from production's dump, a SQLite
//! file copied to a developer's machine) would carry the same number, and
//! its instances, sharing production's Redis by mistake, would pass for
//! production's own: production would route their events and drop its
//! own as already routed. So the identity is kept with the place it was
//! drawn for (PostgreSQL: the server's system identifier and the
//! database's name; SQLite: the file's device and inode), and a store
//! found in another place draws a new one.

use std::path::Path;

/// Keys of `broker_state`.
pub(super) const STORE_IDENTITY: &str = "store_identity";
/// The place the identity was drawn for, as [`place_mark`] gives it.
pub(super) const STORE_PLACE: &str = "store_place";

/// A new identity: a random positive number.
pub(super) fn drawn() -> i64 {
    (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64 | 1
}

/// The mark of a place, stable across processes and builds (FNV-1a, as a
/// positive number).
pub(super) fn place_mark(place: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in place.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash >> 1) as i64
}

/// What a store's instance found: the identity recorded for `recorded`
/// place (`None`: a store from before places were kept) against `here`.
/// `true` when the identity must be drawn again.
pub(super) fn is_copy(recorded: Option<i64>, here: i64) -> bool {
    recorded.is_some_and(|recorded| recorded != here)
}

/// Says that a store copied from another place got an identity of its own.
pub(super) fn log_redrawn(place: &str) {
    tracing::warn!(
        place,
        "this store was copied from another place (a dump restored, a file copied): it gets an \
         identity of its own, so its instances are never taken for the original's on a shared \
         Redis"
    );
}

/// Where the file is: its device and inode, which a copy does not share
/// (its path, where the system has no inodes).
pub(super) fn file_place(path: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata(path) {
            return format!("{}:{}", meta.dev(), meta.ino());
        }
    }
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_has_one_mark_and_a_copy_elsewhere_is_told_apart() {
        assert_eq!(
            place_mark("7716487735985604811/sse_broker"),
            place_mark("7716487735985604811/sse_broker")
        );
        assert_ne!(
            place_mark("7716487735985604811/sse_broker"),
            place_mark("7716487735985604811/sse_broker_staging")
        );
        assert!(place_mark("x") >= 0);
        assert!(
            !is_copy(None, 5),
            "a store from before places: kept, its place recorded"
        );
        assert!(!is_copy(Some(5), 5));
        assert!(is_copy(Some(5), 6));
        assert!(drawn() > 0);
    }
}
