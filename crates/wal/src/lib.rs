//! Segmented write-ahead log: the first place a write lands, so that an acknowledged
//! write survives a crash. Each store keeps one; it appends opaque byte records, which
//! are made durable under an [`FsyncPolicy`] with group commit, and gives them back in
//! order at start-up ([`Wal::replay`]) after cutting a torn or corrupt tail.
//!
//! It must never know what its records mean: it stores opaque byte records, in order,
//! durably, and gives them back in the same order at start-up. The on-disk format is
//! described in `crates/wal/FORMAT.md`.

mod repair;
mod segment;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::segment::{HeaderStatus, SegmentReader, Step, io_error};
use crate::writer::Shared;

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
    #[error("wal segment {path} has format version {version}, which this build cannot read")]
    UnsupportedVersion { path: String, version: u32 },
    #[error("wal record of {len} bytes is larger than the limit of {max} bytes")]
    RecordTooLarge { len: usize, max: usize },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// When appended records are made durable with fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every append waits for an fsync that started after its write: one starts at
    /// once when none is running, and appends that arrive while it runs share the
    /// next one (group commit).
    Always,
    /// Group commit as under `Always`, except that an fsync waits until the oldest
    /// unsynced write is `max_delay` old, gathering more writes (zero: it starts at
    /// once, the default). `max_delay` is thus the longest a write waits for its fsync
    /// to start when no other fsync is running.
    Batch { max_delay: Duration },
    /// Never fsync (data is in the OS page cache: survives a process crash, not a
    /// power loss).
    None,
}

impl Default for FsyncPolicy {
    fn default() -> FsyncPolicy {
        FsyncPolicy::Batch {
            max_delay: Duration::ZERO,
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

/// Counters of a [`Wal`] for the server's own `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct WalStats {
    /// Segment files on disk (the active one included).
    pub segments: u64,
    /// Bytes of those segment files.
    pub bytes: u64,
    /// Records appended since the log was opened.
    pub records_appended_total: u64,
    /// Data fsyncs issued since the log was opened (group commits and rotations).
    pub fsyncs_total: u64,
    /// Time spent in those fsyncs.
    pub fsync_seconds_total: f64,
    /// Longest single fsync.
    pub fsync_seconds_max: f64,
}

/// A segmented write-ahead log in one directory.
///
/// `Wal` is `Send + Sync`: share it (e.g. in an `Arc`) and append from many threads.
/// One directory must be opened by one `Wal` at a time.
pub struct Wal {
    shared: Shared,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared.dir)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, cutting a torn or corrupt tail at
    /// the last good record with a warning. Appends go to a fresh segment.
    ///
    /// If a segment in the middle is corrupt, it is cut there and every later segment
    /// is removed, so what remains is always a prefix of what was written. Fails with
    /// [`Error::UnsupportedVersion`] (changing nothing) on a segment of a newer format.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, RepairReport)> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let recovered = repair::recover(dir)?;
        let shared = Shared::start(
            PathBuf::from(dir),
            options,
            recovered.segments,
            recovered.next_id,
        )?;
        Ok((Wal { shared }, recovered.report))
    }

    /// Calls `f` with every record in order, oldest first, with its segment id.
    ///
    /// Reads the records written before the call (appends made meanwhile may or may
    /// not be seen). Should bytes have gone bad since [`Wal::open`], replay stops at the
    /// first bad record with a warning: it never returns garbage.
    pub fn replay<E>(&self, mut f: impl FnMut(SegmentId, &[u8]) -> Result<(), E>) -> Result<(), E>
    where
        E: From<Error>,
    {
        let dir = &self.shared.dir;
        for segment in self.shared.segment_snapshot() {
            let mut reader = match SegmentReader::open(dir, segment.id, Some(segment.bytes)) {
                Ok(reader) => reader,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    // Deleted by a concurrent `truncate_before`.
                    tracing::debug!(segment = segment.id, "wal segment vanished during replay");
                    continue;
                }
                Err(error) => {
                    return Err(E::from(io_error(
                        &segment::segment_path(dir, segment.id),
                        error,
                    )));
                }
            };
            match reader.read_header().map_err(E::from)? {
                HeaderStatus::Valid => {}
                HeaderStatus::Corrupt(reason) => {
                    tracing::warn!(
                        segment = segment.id,
                        reason,
                        "wal replay stopped: segment header is corrupt"
                    );
                    return Ok(());
                }
                HeaderStatus::UnsupportedVersion(version) => {
                    return Err(E::from(Error::UnsupportedVersion {
                        path: reader.path().display().to_string(),
                        version,
                    }));
                }
            }
            loop {
                match reader.next().map_err(E::from)? {
                    Step::Record(record) => f(segment.id, record)?,
                    Step::End => break,
                    Step::Corrupt(corruption) => {
                        tracing::warn!(
                            segment = segment.id,
                            offset = corruption.offset,
                            reason = corruption.reason,
                            "wal replay stopped at a bad record"
                        );
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends one record and returns once it is durable under the fsync policy.
    /// Safe to call from many threads: concurrent appends share fsyncs (group commit).
    ///
    /// Returns the id of the segment that holds the record. After a failed write or
    /// fsync every append fails with [`Error::Poisoned`]: reopen the log to go on.
    pub fn append(&self, record: &[u8]) -> Result<SegmentId> {
        self.shared.append(record)
    }

    /// Closes the current segment and starts a new one; returns the new segment's id.
    ///
    /// Every record appended before the call is in a segment below the returned id,
    /// and durable (the closed segment is fsynced whatever the policy).
    pub fn rotate(&self) -> Result<SegmentId> {
        self.shared.rotate()
    }

    /// Ids of the segments on disk, ascending.
    pub fn segments(&self) -> Vec<SegmentId> {
        self.shared.segment_ids()
    }

    /// Deletes every segment with an id below `segment`; returns how many.
    /// The active segment is never deleted, whatever `segment` says.
    pub fn truncate_before(&self, segment: SegmentId) -> Result<usize> {
        self.shared.truncate_before(segment)
    }

    /// Makes everything appended so far durable now, whatever the policy.
    pub fn sync(&self) -> Result<()> {
        self.shared.sync()
    }

    /// Waits until every record appended before the call is durable under the fsync
    /// policy, as an append would (leading or sharing a group fsync, within `Batch`'s
    /// gathering window); under `None` it returns at once. Fails with [`Error::Poisoned`] whenever the log
    /// is poisoned, even if nothing is pending, so a caller never reports success for
    /// data whose write failed.
    pub fn wait_durable(&self) -> Result<()> {
        self.shared.wait_all_durable()
    }

    /// Poisons the log as a failed write would (for tests of callers' error paths).
    #[doc(hidden)]
    pub fn poison_for_tests(&self, reason: &str) {
        self.shared.poison(reason.to_owned());
    }

    /// Counters for the server's `/metrics`.
    pub fn stats(&self) -> WalStats {
        self.shared.stats()
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}
