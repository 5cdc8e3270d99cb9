//! Segmented write-ahead log. (API SKELETON — the implementation is being written.)
//!
//! It must never know what its records mean: it stores opaque byte records, in order,
//! durably, and gives them back in the same order at start-up.

use std::path::Path;
use std::time::Duration;

/// Errors of the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("wal i/o error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("wal is closed after an earlier write failure: {0}")]
    Poisoned(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// When appended records are made durable with fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every append waits for its own fsync (shared with appends that arrive during it).
    Always,
    /// Appends wait for a group fsync issued at most `max_delay` after the first
    /// unsynced write. The default.
    Batch { max_delay: Duration },
    /// Never fsync (data is in the OS page cache: survives a process crash, not a
    /// power loss).
    None,
}

impl Default for FsyncPolicy {
    fn default() -> FsyncPolicy {
        FsyncPolicy::Batch {
            max_delay: Duration::from_millis(10),
        }
    }
}

/// Options of a [`Wal`].
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_size_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_size_bytes: 128 << 20,
            fsync: FsyncPolicy::default(),
        }
    }
}

/// Index of a segment file; segments are numbered upward from 0.
pub type SegmentId = u64;

/// What [`Wal::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Bytes cut from a torn or corrupt tail.
    pub truncated_bytes: u64,
    /// Whole segments removed because they followed a corrupt one.
    pub removed_segments: u64,
}

/// A segmented write-ahead log in one directory.
#[derive(Debug)]
pub struct Wal {}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, cutting a torn or corrupt tail at
    /// the last good record with a warning. Appends go to a fresh segment.
    pub fn open(_dir: &Path, _options: WalOptions) -> Result<(Wal, RepairReport)> {
        unimplemented!("wal skeleton")
    }

    /// Calls `f` with every record in order, oldest first, with its segment id.
    pub fn replay<E>(&self, _f: impl FnMut(SegmentId, &[u8]) -> Result<(), E>) -> Result<(), E>
    where
        E: From<Error>,
    {
        unimplemented!("wal skeleton")
    }

    /// Appends one record and returns once it is durable under the fsync policy.
    /// Safe to call from many threads: concurrent appends share fsyncs (group commit).
    pub fn append(&self, _record: &[u8]) -> Result<SegmentId> {
        unimplemented!("wal skeleton")
    }

    /// Closes the current segment and starts a new one; returns the new segment's id.
    pub fn rotate(&self) -> Result<SegmentId> {
        unimplemented!("wal skeleton")
    }

    /// Ids of the segments on disk, ascending.
    pub fn segments(&self) -> Vec<SegmentId> {
        unimplemented!("wal skeleton")
    }

    /// Deletes every segment with an id below `segment`; returns how many.
    pub fn truncate_before(&self, _segment: SegmentId) -> Result<usize> {
        unimplemented!("wal skeleton")
    }

    /// Makes everything appended so far durable now, whatever the policy.
    pub fn sync(&self) -> Result<()> {
        unimplemented!("wal skeleton")
    }
}
