//! The append path and group commit.
//!
//! Two locks, always taken in this order when nested: `writer` (serializes write(2)
//! calls, rotation and deletion) then `sync` (the durability watermark). Each written
//! record gets a sequence number; `SyncState::synced_seq` says up to which one
//! everything is durable. An fsync runs with no lock held, by one leader at a time,
//! and covers every record written before it started: that is the group commit.
//!
//! The leader is whichever waiter finds its record not yet covered and no fsync
//! running (an appender, a caller of `wait_durable` or of `sync`): it starts one at
//! once, or under `Batch` once the oldest unsynced record is `max_delay` old (the
//! gathering window; zero by default). Records written while an fsync runs wait for
//! the next one, which a waiter leads as soon as the running one ends; every change of
//! `synced_seq`, `syncing` or `poisoned` wakes all waiters, so none is left behind.
//! Once a write or an fsync fails the WAL is poisoned: the watermark never moves again
//! and every waiter and later append gets the error.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::repair::SegmentInfo;
use crate::segment::{
    HEADER_LEN, MAX_RECORD_LEN, create_segment, encode_frame, io_error, segment_path, sync_dir,
};
use crate::{Error, FsyncPolicy, Result, SegmentId, WalOptions, WalStats};

/// A frame buffer grown past this by a large record is given back after the write.
const FRAME_BUFFER_KEEP_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) options: WalOptions,
    writer: Mutex<WriterState>,
    sync: Mutex<SyncState>,
    /// Signalled when `synced_seq` moves, an fsync ends or the WAL is poisoned.
    durable: Condvar,
    poisoned: AtomicBool,
    records_appended_total: AtomicU64,
    fsync_stats: Mutex<FsyncStats>,
    #[cfg(test)]
    pub(crate) fail_next_fsync: AtomicBool,
    #[cfg(test)]
    pub(crate) fail_next_write: AtomicBool,
    /// Called before every data fsync with the sequence number it will cover.
    #[cfg(test)]
    pub(crate) fsync_hook: crate::tests::FsyncHook,
}

#[derive(Debug)]
struct WriterState {
    /// Segments on disk, ascending; the last one is the active segment.
    segments: Vec<SegmentInfo>,
    active_file: Arc<File>,
    active_records: u64,
    written_seq: u64,
    frame: Vec<u8>,
}

impl WriterState {
    fn active(&self) -> SegmentInfo {
        // `segments` always holds the active segment: it is pushed at creation and
        // `truncate_before` never removes it.
        self.segments
            .last()
            .copied()
            .unwrap_or(SegmentInfo { id: 0, bytes: 0 })
    }

    fn active_mut(&mut self) -> Option<&mut SegmentInfo> {
        self.segments.last_mut()
    }
}

#[derive(Debug)]
struct SyncState {
    /// The file holding every written record that is not yet durable (older segments
    /// were fsynced when they were closed).
    active_file: Arc<File>,
    written_seq: u64,
    synced_seq: u64,
    /// A leader is running an fsync.
    syncing: bool,
    /// When the oldest record not covered by a finished or running fsync was written.
    first_unsynced_at: Option<Instant>,
    poisoned: Option<String>,
}

#[derive(Debug, Default)]
struct FsyncStats {
    count: u64,
    seconds_total: f64,
    seconds_max: f64,
}

impl Shared {
    /// Takes over the repaired segments in `dir` and creates the fresh active segment
    /// `next_id`.
    pub(crate) fn start(
        dir: PathBuf,
        options: WalOptions,
        mut segments: Vec<SegmentInfo>,
        next_id: SegmentId,
    ) -> Result<Shared> {
        let active_file = Arc::new(create_segment(&dir, next_id)?);
        segments.push(SegmentInfo {
            id: next_id,
            bytes: HEADER_LEN,
        });
        Ok(Shared {
            dir,
            options,
            writer: Mutex::new(WriterState {
                segments,
                active_file: Arc::clone(&active_file),
                active_records: 0,
                written_seq: 0,
                frame: Vec::new(),
            }),
            sync: Mutex::new(SyncState {
                active_file,
                written_seq: 0,
                synced_seq: 0,
                syncing: false,
                first_unsynced_at: None,
                poisoned: None,
            }),
            durable: Condvar::new(),
            poisoned: AtomicBool::new(false),
            records_appended_total: AtomicU64::new(0),
            fsync_stats: Mutex::new(FsyncStats::default()),
            #[cfg(test)]
            fail_next_fsync: AtomicBool::new(false),
            #[cfg(test)]
            fail_next_write: AtomicBool::new(false),
            #[cfg(test)]
            fsync_hook: crate::tests::FsyncHook::default(),
        })
    }

    pub(crate) fn append(&self, record: &[u8]) -> Result<SegmentId> {
        self.append_seq(record).map(|(segment, _)| segment)
    }

    /// [`Shared::append`], also returning the record's sequence number.
    pub(crate) fn append_seq(&self, record: &[u8]) -> Result<(SegmentId, u64)> {
        if record.len() > MAX_RECORD_LEN {
            return Err(Error::RecordTooLarge {
                len: record.len(),
                max: MAX_RECORD_LEN,
            });
        }
        let (segment, seq) = self.write_record(record)?;
        self.records_appended_total.fetch_add(1, Ordering::Relaxed);
        if let Some(window) = self.gathering_window() {
            self.wait_durable(seq, window)?;
        }
        Ok((segment, seq))
    }

    /// How long an fsync may wait for more records after the oldest unsynced one was
    /// written; `None` when appends do not wait for fsyncs at all.
    fn gathering_window(&self) -> Option<Duration> {
        match self.options.fsync {
            FsyncPolicy::None => None,
            FsyncPolicy::Always => Some(Duration::ZERO),
            FsyncPolicy::Batch { max_delay } => Some(max_delay),
        }
    }

    /// Writes one framed record with a single write(2); returns its segment and
    /// sequence number.
    fn write_record(&self, record: &[u8]) -> Result<(SegmentId, u64)> {
        let mut writer = self.writer.lock();
        self.check_poisoned()?;
        let active = writer.active();
        let segment_full =
            writer.active_records > 0 && active.bytes >= self.options.segment_size_bytes;
        if segment_full && let Err(error) = self.rotate_locked(&mut writer) {
            if self.poisoned.load(Ordering::Acquire) {
                return Err(error);
            }
            // The active segment is intact and fsynced: keep appending to it.
            tracing::warn!(segment = active.id, error = %error, "wal segment rotation failed: active segment keeps growing");
        }
        let writer = &mut *writer;
        encode_frame(&mut writer.frame, record);
        if let Err(error) = self.write_frame(&writer.active_file, &writer.frame) {
            let path = segment_path(&self.dir, writer.active().id);
            self.poison(format!("write to {} failed: {error}", path.display()));
            return Err(io_error(&path, error));
        }
        let frame_len = writer.frame.len() as u64;
        if writer.frame.capacity() > FRAME_BUFFER_KEEP_BYTES {
            writer.frame = Vec::new();
        }
        let Some(active) = writer.active_mut() else {
            return Err(Error::Poisoned("wal has no active segment".to_owned()));
        };
        active.bytes += frame_len;
        let segment = active.id;
        writer.active_records += 1;
        writer.written_seq += 1;
        let seq = writer.written_seq;
        let mut sync = self.sync.lock();
        sync.written_seq = seq;
        if sync.first_unsynced_at.is_none() && self.gathering_window().is_some() {
            sync.first_unsynced_at = Some(Instant::now());
        }
        Ok((segment, seq))
    }

    fn write_frame(&self, file: &File, frame: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if self.fail_next_write.swap(false, Ordering::SeqCst) {
            // Simulate a short write followed by an error, as with a full disk.
            let half = frame.len() / 2;
            let mut writer = file;
            writer.write_all(&frame[..half])?;
            return Err(std::io::Error::other("injected write failure"));
        }
        let mut writer = file;
        writer.write_all(frame)
    }

    pub(crate) fn rotate(&self) -> Result<SegmentId> {
        let mut writer = self.writer.lock();
        self.rotate_locked(&mut writer)
    }

    /// Fsyncs and closes the active segment, then starts the next one.
    fn rotate_locked(&self, writer: &mut WriterState) -> Result<SegmentId> {
        self.check_poisoned()?;
        let old = writer.active();
        if let Err(error) = self.timed_fsync(&writer.active_file) {
            let path = segment_path(&self.dir, old.id);
            self.poison(format!("fsync of {} failed: {error}", path.display()));
            return Err(io_error(&path, error));
        }
        let new_id = old.id.checked_add(1).ok_or_else(|| Error::Io {
            path: self.dir.display().to_string(),
            source: std::io::Error::other("segment ids exhausted"),
        })?;
        let file = Arc::new(create_segment(&self.dir, new_id)?);
        writer.segments.push(SegmentInfo {
            id: new_id,
            bytes: HEADER_LEN,
        });
        writer.active_file = Arc::clone(&file);
        writer.active_records = 0;
        let mut sync = self.sync.lock();
        sync.active_file = file;
        // Everything written so far is in fsynced segments now.
        if sync.poisoned.is_none() && sync.synced_seq < writer.written_seq {
            sync.synced_seq = writer.written_seq;
            sync.first_unsynced_at = None;
            self.durable.notify_all();
        }
        tracing::debug!(closed = old.id, opened = new_id, "wal segment rotated");
        Ok(new_id)
    }

    /// Makes every record written before this call durable now (no gathering window).
    pub(crate) fn sync(&self) -> Result<()> {
        let target = self.sync.lock().written_seq;
        self.wait_durable(target, Duration::ZERO)
    }

    /// Blocks until every record written so far is durable under the policy; fails
    /// whenever the log is poisoned.
    pub(crate) fn wait_all_durable(&self) -> Result<()> {
        self.check_poisoned()?;
        let target = self.sync.lock().written_seq;
        match self.gathering_window() {
            None => Ok(()),
            Some(window) => self.wait_durable(target, window),
        }
    }

    /// Blocks until record `seq` is durable. Leads the fsync itself when none is
    /// running and the oldest unsynced record is `window` old (at once for zero);
    /// otherwise waits for the running fsync, or for the window to end.
    fn wait_durable(&self, seq: u64, window: Duration) -> Result<()> {
        let mut sync = self.sync.lock();
        loop {
            if sync.synced_seq >= seq {
                return Ok(());
            }
            if let Some(reason) = &sync.poisoned {
                return Err(Error::Poisoned(reason.clone()));
            }
            if sync.syncing {
                self.durable.wait(&mut sync);
                continue;
            }
            // `first_unsynced_at` is `Some` whenever a record is unsynced and no fsync
            // runs; `None` here (a record written under the `None` policy, then
            // `sync`) means no gathering.
            let deadline = match sync.first_unsynced_at {
                Some(first) if !window.is_zero() => first.checked_add(window),
                _ => Some(Instant::now()),
            };
            match deadline {
                Some(deadline) if Instant::now() >= deadline => sync = self.lead_sync(sync),
                Some(deadline) => {
                    self.durable.wait_until(&mut sync, deadline);
                }
                // A window too long to represent: only `sync` makes records durable.
                None => self.durable.wait(&mut sync),
            }
        }
    }

    /// Fsyncs the active segment with the lock released, for every record written so
    /// far, then moves the watermark (or poisons the WAL).
    fn lead_sync<'a>(&'a self, mut sync: MutexGuard<'a, SyncState>) -> MutexGuard<'a, SyncState> {
        sync.syncing = true;
        sync.first_unsynced_at = None;
        let file = Arc::clone(&sync.active_file);
        let target = sync.written_seq;
        let result = MutexGuard::unlocked(&mut sync, || {
            #[cfg(test)]
            self.fsync_hook.before_fsync(target)?;
            self.timed_fsync(&file)
        });
        sync.syncing = false;
        match result {
            Ok(()) if sync.poisoned.is_none() => {
                sync.synced_seq = sync.synced_seq.max(target);
            }
            Ok(()) => {}
            Err(error) => {
                let reason = format!("wal fsync failed in {}: {error}", self.dir.display());
                tracing::error!(error = %error, dir = %self.dir.display(), "wal fsync failed: refusing further appends");
                sync.poisoned.get_or_insert(reason);
                self.poisoned.store(true, Ordering::Release);
            }
        }
        self.durable.notify_all();
        sync
    }

    fn timed_fsync(&self, file: &File) -> std::io::Result<()> {
        #[cfg(test)]
        if self.fail_next_fsync.swap(false, Ordering::SeqCst) {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        let started = Instant::now();
        file.sync_data()?;
        let seconds = started.elapsed().as_secs_f64();
        let mut stats = self.fsync_stats.lock();
        stats.count += 1;
        stats.seconds_total += seconds;
        stats.seconds_max = stats.seconds_max.max(seconds);
        Ok(())
    }

    fn check_poisoned(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        let reason = self.sync.lock().poisoned.clone().unwrap_or_default();
        Err(Error::Poisoned(reason))
    }

    pub(crate) fn poison(&self, reason: String) {
        tracing::error!(reason = %reason, "wal poisoned: refusing further appends");
        let mut sync = self.sync.lock();
        sync.poisoned.get_or_insert(reason);
        self.poisoned.store(true, Ordering::Release);
        self.durable.notify_all();
    }

    pub(crate) fn segment_ids(&self) -> Vec<SegmentId> {
        self.writer.lock().segments.iter().map(|s| s.id).collect()
    }

    /// The segments with the number of bytes of each that hold whole written records.
    pub(crate) fn segment_snapshot(&self) -> Vec<SegmentInfo> {
        self.writer.lock().segments.clone()
    }

    /// Deletes the segments below `segment`, never the active one, oldest first.
    pub(crate) fn truncate_before(&self, segment: SegmentId) -> Result<usize> {
        let mut writer = self.writer.lock();
        let bound = segment.min(writer.active().id);
        let removable = writer.segments.iter().take_while(|s| s.id < bound).count();
        let mut removed = 0;
        let mut result = Ok(());
        for info in &writer.segments[..removable] {
            let path = segment_path(&self.dir, info.id);
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => removed += 1,
                Err(error) => {
                    result = Err(io_error(&path, error));
                    break;
                }
            }
        }
        writer.segments.drain(..removed);
        drop(writer);
        if removed > 0 {
            sync_dir(&self.dir)?;
            tracing::debug!(removed, before = segment, "wal segments deleted");
        }
        result.map(|()| removed)
    }

    pub(crate) fn stats(&self) -> WalStats {
        let (segments, bytes) = {
            let writer = self.writer.lock();
            (
                writer.segments.len() as u64,
                writer.segments.iter().map(|s| s.bytes).sum(),
            )
        };
        let fsync = self.fsync_stats.lock();
        WalStats {
            segments,
            bytes,
            records_appended_total: self.records_appended_total.load(Ordering::Relaxed),
            fsyncs_total: fsync.count,
            fsync_seconds_total: fsync.seconds_total,
            fsync_seconds_max: fsync.seconds_max,
        }
    }
}
