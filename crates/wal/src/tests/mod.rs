//! Tests of the whole log: examples here, property tests in `props.rs`, the
//! model-based test in `model.rs`, concurrency in `concurrent.rs`.

mod concurrent;
mod group_commit;
mod model;
mod props;

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::segment::{FRAME_HEADER_LEN, HEADER_LEN, encode_header, framed_len, segment_path};
use crate::{Error, FsyncPolicy, RepairReport, SegmentId, Wal, WalOptions};

/// A test's code run before every data fsync of a log, with the sequence number the
/// fsync will cover; an error fails the fsync as the disk would.
type FsyncHookFn = dyn Fn(u64) -> std::io::Result<()> + Send + Sync;

/// Where a test installs its [`FsyncHookFn`] (none by default).
#[derive(Default)]
pub(crate) struct FsyncHook(Mutex<Option<Arc<FsyncHookFn>>>);

impl std::fmt::Debug for FsyncHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FsyncHook")
    }
}

impl FsyncHook {
    pub(crate) fn set(&self, hook: impl Fn(u64) -> std::io::Result<()> + Send + Sync + 'static) {
        *self.0.lock() = Some(Arc::new(hook));
    }

    pub(crate) fn before_fsync(&self, target: u64) -> std::io::Result<()> {
        let hook = self.0.lock().clone();
        hook.map_or(Ok(()), |hook| hook(target))
    }
}

pub(crate) fn options(segment_size_bytes: u64, fsync: FsyncPolicy) -> WalOptions {
    WalOptions {
        segment_size_bytes,
        fsync,
    }
}

pub(crate) fn open(dir: &Path, options: WalOptions) -> (Wal, RepairReport) {
    match Wal::open(dir, options) {
        Ok(opened) => opened,
        Err(error) => panic!("open failed: {error}"),
    }
}

pub(crate) fn replay_all(wal: &Wal) -> Vec<(SegmentId, Vec<u8>)> {
    let mut records = Vec::new();
    let result: Result<(), Error> = wal.replay(|segment, record| {
        records.push((segment, record.to_vec()));
        Ok(())
    });
    if let Err(error) = result {
        panic!("replay failed: {error}");
    }
    records
}

pub(crate) fn replay_records(wal: &Wal) -> Vec<Vec<u8>> {
    replay_all(wal).into_iter().map(|(_, r)| r).collect()
}

pub(crate) fn file_len(dir: &Path, segment: SegmentId) -> u64 {
    std::fs::metadata(segment_path(dir, segment))
        .map(|m| m.len())
        .unwrap_or_else(|e| panic!("stat of segment {segment}: {e}"))
}

pub(crate) fn set_file_len(dir: &Path, segment: SegmentId, len: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment_path(dir, segment))
        .unwrap();
    file.set_len(len).unwrap();
}

/// Bytes of the last good record boundary at or below `offset` in a segment whose
/// records end at `ends` (0 when `offset` is inside the header).
pub(crate) fn valid_len_at(offset: u64, ends: &[u64]) -> u64 {
    if offset < HEADER_LEN {
        return 0;
    }
    ends.iter()
        .copied()
        .filter(|&end| end <= offset)
        .max()
        .unwrap_or(HEADER_LEN)
}

#[derive(Clone)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` and returns what it logged at warn level or above.
pub(crate) fn capture_warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer_buffer = Arc::clone(&buffer);
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || SharedBuffer(Arc::clone(&writer_buffer)))
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let logged = String::from_utf8_lossy(&buffer.lock()).into_owned();
    (value, logged)
}

#[test]
fn empty_log_opens_replays_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, report) = open(dir.path(), WalOptions::default());
    assert_eq!(report, RepairReport::default());
    assert_eq!(wal.segments(), vec![0]);
    assert!(replay_all(&wal).is_empty());
    drop(wal);
    let (wal, report) = open(dir.path(), WalOptions::default());
    assert_eq!(report, RepairReport::default());
    assert_eq!(wal.segments(), vec![0, 1]);
}

#[test]
fn records_come_back_in_order_with_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20, FsyncPolicy::Always));
    assert_eq!(wal.append(b"one").unwrap(), 0);
    assert_eq!(wal.append(b"").unwrap(), 0);
    assert_eq!(wal.rotate().unwrap(), 1);
    assert_eq!(wal.append(b"three").unwrap(), 1);
    let expected = vec![
        (0, b"one".to_vec()),
        (0, Vec::new()),
        (1, b"three".to_vec()),
    ];
    assert_eq!(replay_all(&wal), expected);
    drop(wal);
    let (wal, report) = open(dir.path(), options(1 << 20, FsyncPolicy::Always));
    assert_eq!(report, RepairReport::default());
    assert_eq!(replay_all(&wal), expected);
    assert_eq!(wal.append(b"four").unwrap(), 2);
}

#[test]
fn segments_rotate_at_the_size_limit_and_big_records_fit() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(100, FsyncPolicy::None));
    let big = vec![7u8; 1000];
    assert_eq!(wal.append(&big).unwrap(), 0);
    assert_eq!(wal.append(b"small").unwrap(), 1);
    assert_eq!(wal.append(b"small").unwrap(), 1);
    assert_eq!(file_len(dir.path(), 0), HEADER_LEN + framed_len(1000));
    assert_eq!(wal.segments(), vec![0, 1]);
    let stats = wal.stats();
    assert_eq!(stats.segments, 2);
    assert_eq!(
        stats.bytes,
        2 * HEADER_LEN + framed_len(1000) + 2 * framed_len(5)
    );
    assert_eq!(stats.records_appended_total, 3);
    assert_eq!(
        stats.fsyncs_total, 1,
        "the rotation fsyncs the closed segment"
    );
}

#[test]
fn truncate_before_keeps_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20, FsyncPolicy::None));
    for i in 0..4u8 {
        wal.append(&[i]).unwrap();
        wal.rotate().unwrap();
    }
    assert_eq!(wal.segments(), vec![0, 1, 2, 3, 4]);
    assert_eq!(wal.truncate_before(2).unwrap(), 2);
    assert_eq!(wal.segments(), vec![2, 3, 4]);
    assert_eq!(replay_records(&wal), vec![vec![2], vec![3]]);
    assert_eq!(wal.truncate_before(2).unwrap(), 0);
    assert_eq!(wal.truncate_before(u64::MAX).unwrap(), 2);
    assert_eq!(wal.segments(), vec![4]);
    assert!(!segment_path(dir.path(), 3).exists());
    wal.append(b"after").unwrap();
    drop(wal);
    let (wal, report) = open(dir.path(), options(1 << 20, FsyncPolicy::None));
    assert_eq!(report, RepairReport::default());
    assert_eq!(wal.segments(), vec![4, 5]);
    assert_eq!(replay_records(&wal), vec![b"after".to_vec()]);
}

#[test]
fn torn_tail_is_cut_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20, FsyncPolicy::None));
    wal.append(b"kept").unwrap();
    wal.append(b"torn record").unwrap();
    drop(wal);
    let full = file_len(dir.path(), 0);
    set_file_len(dir.path(), 0, full - 3);
    let ((wal, report), logged) =
        capture_warnings(|| open(dir.path(), options(1 << 20, FsyncPolicy::None)));
    assert_eq!(
        report,
        RepairReport {
            truncated_bytes: framed_len(11) - 3,
            removed_segments: 0
        }
    );
    assert!(logged.contains("wal repaired"), "{logged}");
    assert_eq!(replay_records(&wal), vec![b"kept".to_vec()]);
    assert_eq!(file_len(dir.path(), 0), HEADER_LEN + framed_len(4));
    // The repaired segment is never appended to.
    assert_eq!(wal.append(b"new").unwrap(), 1);
}

#[test]
fn corruption_in_a_middle_segment_removes_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20, FsyncPolicy::None));
    wal.append(b"a").unwrap();
    wal.append(b"b").unwrap();
    wal.rotate().unwrap();
    wal.append(b"c").unwrap();
    wal.rotate().unwrap();
    wal.append(b"d").unwrap();
    drop(wal);
    // Flip a payload bit of "b" in segment 0.
    let path = segment_path(dir.path(), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let offset = (HEADER_LEN + framed_len(1) + FRAME_HEADER_LEN) as usize;
    bytes[offset] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let ((wal, report), logged) =
        capture_warnings(|| open(dir.path(), options(1 << 20, FsyncPolicy::None)));
    assert_eq!(
        report,
        RepairReport {
            truncated_bytes: framed_len(1),
            removed_segments: 2
        }
    );
    assert!(logged.contains("checksum mismatch"), "{logged}");
    assert_eq!(wal.segments(), vec![0, 3]);
    assert_eq!(replay_records(&wal), vec![b"a".to_vec()]);
}

#[test]
fn newer_format_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut header = encode_header(0);
    header[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..20]);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
    let mut contents = header.to_vec();
    contents.extend_from_slice(b"future records");
    std::fs::write(segment_path(dir.path(), 0), &contents).unwrap();
    match Wal::open(dir.path(), WalOptions::default()) {
        Err(Error::UnsupportedVersion { version: 2, .. }) => {}
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(segment_path(dir.path(), 0)).unwrap(),
        contents
    );
}

#[test]
fn foreign_files_are_ignored_and_gaps_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    {
        let (wal, _) = open(dir.path(), WalOptions::default());
        wal.append(b"x").unwrap();
        wal.rotate().unwrap();
        wal.append(b"y").unwrap();
        wal.rotate().unwrap();
        wal.append(b"z").unwrap();
    }
    std::fs::remove_file(segment_path(dir.path(), 1)).unwrap();
    let ((wal, report), logged) = capture_warnings(|| open(dir.path(), WalOptions::default()));
    assert_eq!(report, RepairReport::default());
    assert!(logged.contains("not contiguous"), "{logged}");
    assert_eq!(replay_records(&wal), vec![b"x".to_vec(), b"z".to_vec()]);
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn failed_fsync_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20, FsyncPolicy::Always));
    wal.append(b"durable").unwrap();
    wal.shared.fail_next_fsync.store(true, Ordering::SeqCst);
    assert!(matches!(wal.append(b"lost?"), Err(Error::Poisoned(_))));
    assert!(matches!(wal.append(b"refused"), Err(Error::Poisoned(_))));
    assert!(matches!(wal.sync(), Err(Error::Poisoned(_))));
    assert!(matches!(wal.rotate(), Err(Error::Poisoned(_))));
    drop(wal);
    let (wal, _) = open(dir.path(), options(1 << 20, FsyncPolicy::Always));
    let records = replay_records(&wal);
    assert_eq!(records[0], b"durable".to_vec());
    assert!(!records.contains(&b"refused".to_vec()));
    wal.append(b"works again").unwrap();
}

#[test]
fn failed_batch_fsync_fails_the_waiting_append() {
    let dir = tempfile::tempdir().unwrap();
    let policy = FsyncPolicy::Batch {
        max_delay: Duration::from_millis(1),
    };
    let (wal, _) = open(dir.path(), options(1 << 20, policy));
    wal.append(b"durable").unwrap();
    wal.shared.fail_next_fsync.store(true, Ordering::SeqCst);
    assert!(matches!(wal.append(b"lost?"), Err(Error::Poisoned(_))));
    assert!(matches!(wal.append(b"refused"), Err(Error::Poisoned(_))));
}

#[test]
fn failed_write_poisons_and_the_torn_frame_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20, FsyncPolicy::None));
    wal.append(b"good").unwrap();
    wal.shared.fail_next_write.store(true, Ordering::SeqCst);
    assert!(matches!(wal.append(b"half written"), Err(Error::Io { .. })));
    assert!(matches!(wal.append(b"refused"), Err(Error::Poisoned(_))));
    drop(wal);
    let (wal, report) = open(dir.path(), options(1 << 20, FsyncPolicy::None));
    assert_eq!(report.truncated_bytes, framed_len(12) / 2);
    assert_eq!(replay_records(&wal), vec![b"good".to_vec()]);
}

#[test]
fn drop_is_prompt_with_a_long_gathering_window() {
    let dir = tempfile::tempdir().unwrap();
    let policy = FsyncPolicy::Batch {
        max_delay: Duration::from_secs(30),
    };
    let (wal, _) = open(dir.path(), options(1 << 20, policy));
    let started = Instant::now();
    wal.sync().unwrap();
    drop(wal);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn explicit_sync_releases_a_batch_waiter_early() {
    let dir = tempfile::tempdir().unwrap();
    // Even a delay too long to add to an `Instant` must not panic a waiting append.
    let policy = FsyncPolicy::Batch {
        max_delay: Duration::MAX,
    };
    let (wal, _) = open(dir.path(), options(1 << 20, policy));
    let started = Instant::now();
    std::thread::scope(|scope| {
        let appender = scope.spawn(|| wal.append(b"waits"));
        while wal.stats().records_appended_total == 0 {
            std::thread::yield_now();
        }
        wal.sync().unwrap();
        appender.join().unwrap().unwrap();
    });
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(wal.stats().fsyncs_total >= 1);
}

#[test]
fn replay_stops_at_damage_done_after_open() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20, FsyncPolicy::None));
    wal.append(b"first").unwrap();
    wal.append(b"second").unwrap();
    let path = segment_path(dir.path(), 0);
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    file.write_all(&bytes).unwrap();
    let (records, logged) = capture_warnings(|| replay_records(&wal));
    assert_eq!(records, vec![b"first".to_vec()]);
    assert!(logged.contains("replay stopped"), "{logged}");
}

#[test]
fn replay_passes_the_callers_error_through() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), WalOptions::default());
    wal.append(b"a").unwrap();
    wal.append(b"b").unwrap();
    #[derive(Debug)]
    enum CallerError {
        Stop,
        Wal,
    }
    impl From<Error> for CallerError {
        fn from(_: Error) -> CallerError {
            CallerError::Wal
        }
    }
    let mut seen = 0;
    let result = wal.replay(|_, _| {
        seen += 1;
        Err(CallerError::Stop)
    });
    assert!(matches!(result, Err(CallerError::Stop)));
    assert!(!matches!(result, Err(CallerError::Wal)));
    assert_eq!(seen, 1);
}

#[test]
fn an_append_returns_after_its_fsync_under_each_policy() {
    let batch = FsyncPolicy::Batch {
        max_delay: Duration::from_millis(5),
    };
    for (policy, expected_fsyncs) in [(FsyncPolicy::Always, 1), (batch, 1), (FsyncPolicy::None, 0)]
    {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path(), options(1 << 20, policy));
        wal.append(b"record").unwrap();
        assert_eq!(wal.stats().fsyncs_total, expected_fsyncs, "{policy:?}");
        wal.sync().unwrap();
        // Nothing new to sync under a policy that already synced.
        assert_eq!(wal.stats().fsyncs_total, 1, "{policy:?}");
    }
}

#[test]
fn wait_durable_waits_for_the_group_fsync_and_reports_poison() {
    let dir = tempfile::tempdir().unwrap();
    let policy = FsyncPolicy::Batch {
        max_delay: Duration::MAX,
    };
    let (wal, _) = open(dir.path(), options(1 << 20, policy));
    // Nothing pending: returns at once.
    wal.wait_durable().unwrap();
    std::thread::scope(|scope| {
        let appender = scope.spawn(|| wal.append(b"pending"));
        while wal.stats().records_appended_total == 0 {
            std::thread::yield_now();
        }
        let waiter = scope.spawn(|| wal.wait_durable());
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "returned before the record was durable"
        );
        wal.sync().unwrap();
        waiter.join().unwrap().unwrap();
        appender.join().unwrap().unwrap();
    });
    // Poisoned: fails even though everything written is durable.
    wal.poison_for_tests("test");
    assert!(matches!(wal.wait_durable(), Err(Error::Poisoned(_))));

    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20, FsyncPolicy::None));
    wal.append(b"x").unwrap();
    wal.wait_durable().unwrap();
    wal.shared.fail_next_write.store(true, Ordering::SeqCst);
    assert!(wal.append(b"y").is_err());
    assert!(matches!(wal.wait_durable(), Err(Error::Poisoned(_))));
}
