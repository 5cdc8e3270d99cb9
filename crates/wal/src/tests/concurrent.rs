//! Concurrent appends under every fsync policy all come back, in each thread's order.

use std::time::Duration;

use super::{open, options, replay_records};
use crate::{FsyncPolicy, RepairReport};

const THREADS: u32 = 4;
const APPENDS_PER_THREAD: u32 = 150;

fn record(thread: u32, index: u32) -> Vec<u8> {
    let mut record = Vec::with_capacity(8 + index as usize % 50);
    record.extend_from_slice(&thread.to_le_bytes());
    record.extend_from_slice(&index.to_le_bytes());
    record.resize(8 + index as usize % 50, thread as u8);
    record
}

fn concurrent_appends_survive(fsync: FsyncPolicy) {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(2048, fsync));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let wal = &wal;
            scope.spawn(move || {
                for index in 0..APPENDS_PER_THREAD {
                    wal.append(&record(thread, index)).unwrap();
                    if thread == 0 && index == APPENDS_PER_THREAD / 2 {
                        wal.rotate().unwrap();
                    }
                }
            });
        }
    });
    let total = u64::from(THREADS * APPENDS_PER_THREAD);
    let stats = wal.stats();
    assert_eq!(stats.records_appended_total, total);
    if fsync != FsyncPolicy::None {
        assert!(stats.fsyncs_total >= 1);
        assert!(stats.fsync_seconds_total >= 0.0);
        assert!(stats.fsync_seconds_max <= stats.fsync_seconds_total);
    }
    check_records(&replay_records(&wal));
    drop(wal);
    let (wal, report) = open(dir.path(), options(2048, fsync));
    assert_eq!(report, RepairReport::default());
    check_records(&replay_records(&wal));
}

fn check_records(records: &[Vec<u8>]) {
    assert_eq!(records.len() as u32, THREADS * APPENDS_PER_THREAD);
    let mut next = vec![0u32; THREADS as usize];
    for found in records {
        let thread = u32::from_le_bytes([found[0], found[1], found[2], found[3]]);
        let expected_index = next[thread as usize];
        assert_eq!(found, &record(thread, expected_index));
        next[thread as usize] += 1;
    }
}

#[test]
fn concurrent_appends_without_fsync() {
    concurrent_appends_survive(FsyncPolicy::None);
}

#[test]
fn concurrent_appends_with_fsync_always() {
    concurrent_appends_survive(FsyncPolicy::Always);
}

#[test]
fn concurrent_appends_with_batch_fsync() {
    concurrent_appends_survive(FsyncPolicy::Batch {
        max_delay: Duration::from_millis(2),
    });
}

#[test]
fn batch_fsync_groups_commits() {
    let dir = tempfile::tempdir().unwrap();
    let fsync = FsyncPolicy::Batch {
        max_delay: Duration::from_millis(20),
    };
    let (wal, _) = open(dir.path(), options(1 << 30, fsync));
    std::thread::scope(|scope| {
        for thread in 0..8u32 {
            let wal = &wal;
            scope.spawn(move || {
                for index in 0..10 {
                    wal.append(&record(thread, index)).unwrap();
                }
            });
        }
    });
    let stats = wal.stats();
    assert_eq!(stats.records_appended_total, 80);
    // Eight writers waiting on a 20ms window share fsyncs: far fewer than 80.
    assert!(stats.fsyncs_total < 40, "{stats:?}");
}
