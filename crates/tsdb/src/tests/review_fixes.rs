//! Regression tests: durability of repeated samples, failed block cuts, lock-free
//! stats, the appendable window, one WAL snapshot per maintenance pass, metadata
//! limits.

use std::time::Duration;

use sightline_model::{MetricMetadata, MetricType, WriteRequest};

use super::{HOUR, MINUTE, base, dump, labels, options, reasons, request};
use crate::{Db, DbOptions, Error, RejectReason};

#[test]
fn a_repeated_sample_is_acknowledged_only_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        DbOptions {
            wal: sightline_wal::WalOptions {
                segment_size_bytes: 1 << 20,
                // Only an explicit sync makes records durable.
                fsync: sightline_wal::FsyncPolicy::Batch {
                    max_delay: Duration::MAX,
                },
            },
            ..options()
        },
    )
    .unwrap();
    let a = labels("up", "a");
    let t0 = base();
    // The series' record is durable already: the retry logs nothing of its own.
    std::thread::scope(|scope| {
        let setup = scope.spawn(|| db.append(&request(&a, &[(t0 - 1000, 1.0)])));
        while db.wal.stats().records_appended_total == 0 {
            std::thread::yield_now();
        }
        db.close().unwrap();
        setup.join().unwrap().unwrap();
    });
    std::thread::scope(|scope| {
        let first = scope.spawn(|| db.append(&request(&a, &[(t0, 1.0)])));
        while db.wal.stats().records_appended_total == 1 {
            std::thread::yield_now();
        }
        // A retry while the first attempt waits for its fsync must wait too.
        let retry = scope.spawn(|| db.append(&request(&a, &[(t0, 1.0)])));
        std::thread::sleep(Duration::from_millis(200));
        let early = (retry.is_finished(), first.is_finished());
        db.close().unwrap();
        assert_eq!(first.join().unwrap().unwrap().samples_accepted, 1);
        assert_eq!(retry.join().unwrap().unwrap().samples_accepted, 1);
        assert_eq!(early, (false, false), "acknowledged before the fsync");
    });
}

#[test]
fn a_repeated_sample_fails_when_the_wal_is_poisoned() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let a = labels("up", "a");
    let t0 = base();
    db.append(&request(&a, &[(t0, 1.0)])).unwrap();
    // As after a failed write that left its samples in the head.
    db.wal.poison_for_tests("test");
    let retry = db.append(&request(&a, &[(t0, 1.0)]));
    assert!(
        matches!(retry, Err(Error::Wal(sightline_wal::Error::Poisoned(_)))),
        "{retry:?}"
    );
}

#[test]
fn a_failed_block_cut_loses_no_samples() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let a = labels("up", "a");
    let t0 = base();
    let samples: Vec<(i64, f64)> = (0..=12).map(|i| (t0 + i * 15 * MINUTE, i as f64)).collect();
    db.append(&request(&a, &samples)).unwrap();
    let before = dump(&db);
    db.fail_next_cut
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(db.maintain().is_err());
    assert_eq!(dump(&db), before);
    // The samples of the failed range are still writable... and cut next time.
    db.maintain().unwrap();
    assert!(db.stats().blocks >= 1);
    assert_eq!(dump(&db), before);
    db.flush().unwrap();
    assert_eq!(dump(&db), before);
    drop(db);
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(dump(&db), before);

    // Same for flush.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    db.append(&request(&a, &samples)).unwrap();
    db.fail_next_cut
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(db.flush().is_err());
    db.flush().unwrap();
    drop(db);
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(dump(&db), before);
}

#[test]
fn stats_take_no_head_lock_and_counts_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let t0 = base();
    for i in 0..5 {
        let series = labels("m", &i.to_string());
        let samples: Vec<(i64, f64)> = (0..200).map(|j| (t0 + j * 5_000, j as f64)).collect();
        db.append(&request(&series, &samples)).unwrap();
        // Out of order, duplicates and rejects.
        db.append(&request(
            &series,
            &[(t0 + 199 * 5_000 - 2_500, 1.0), (t0, 0.0), (t0, 5.0)],
        ))
        .unwrap();
    }
    let check = |db: &Db| {
        let memory = db.head.memory();
        let stats = db.stats();
        assert_eq!(stats.head_series, db.head.num_series() as u64);
        assert_eq!(stats.head_samples, memory.samples as u64);
        assert_eq!(stats.head_chunks, memory.chunks as u64);
    };
    check(&db);
    assert_eq!(db.stats().head_samples, 5 * 201);
    db.maintain().unwrap();
    check(&db);
    db.flush().unwrap();
    check(&db);
    assert_eq!(db.stats().head_series, 0);

    // A writer holding the head lock exclusively does not block stats.
    let guard = db.head.create_guard();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| sender.send(db.stats()).unwrap());
        let got = receiver.recv_timeout(Duration::from_secs(2));
        drop(guard);
        assert!(got.is_ok(), "stats waited for the head lock");
    });
}

#[test]
fn new_series_cannot_write_far_into_the_past() {
    let dir = tempfile::tempdir().unwrap();
    // block_range 1h: in-order samples up to 30 min behind the head's newest.
    let db = Db::open(dir.path(), options()).unwrap();
    let t0 = base();
    db.append(&request(&labels("up", "a"), &[(t0, 1.0)]))
        .unwrap();
    let report = db
        .append(&request(&labels("up", "b"), &[(t0 - 2 * HOUR, 1.0)]))
        .unwrap();
    assert_eq!(reasons(&report), vec![RejectReason::TooOld]);
    // A lagging series within the appendable window is fine...
    let report = db
        .append(&request(&labels("up", "c"), &[(t0 - 20 * MINUTE, 1.0)]))
        .unwrap();
    assert_eq!(report.samples_accepted, 1);
    // ...but a series' own out-of-order limit still applies.
    let report = db
        .append(&request(&labels("up", "a"), &[(t0 - 20 * MINUTE, 1.0)]))
        .unwrap();
    assert_eq!(reasons(&report), vec![RejectReason::OutOfOrder]);
}

#[test]
fn a_request_is_judged_against_one_appendable_window_whatever_its_order() {
    // block_range 1h: samples up to 30 min behind the head's newest when the request
    // began. The write path appends known series before new ones; neither that nor
    // the order of the series in the request may change what is accepted.
    for new_series_first in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), options()).unwrap();
        let t0 = base();
        db.append(&request(&labels("up", "a"), &[(t0, 1.0)]))
            .unwrap();
        let known = request(&labels("up", "a"), &[(t0 + 20 * MINUTE, 2.0)]).series;
        let new = request(&labels("up", "b"), &[(t0 - 20 * MINUTE, 1.0)]).series;
        let series = if new_series_first {
            [new, known].concat()
        } else {
            [known, new].concat()
        };
        let report = db
            .append(&WriteRequest {
                series,
                metadata: Vec::new(),
            })
            .unwrap();
        assert_eq!(
            report.samples_accepted, 2,
            "new series first: {new_series_first}"
        );
        assert!(report.rejected.is_empty());
    }
}

#[test]
fn many_old_ranges_are_cut_with_one_wal_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        DbOptions {
            out_of_order_window: Duration::from_secs(10 * 3600),
            wal: sightline_wal::WalOptions {
                segment_size_bytes: 1 << 20,
                fsync: sightline_wal::FsyncPolicy::None,
            },
            ..options()
        },
    )
    .unwrap();
    let a = labels("up", "a");
    let t0 = base();
    let samples: Vec<(i64, f64)> = [0, -2, -4, -6, -8]
        .iter()
        .map(|h| (t0 + h * HOUR, 1.0))
        .collect();
    let report = db.append(&request(&a, &samples)).unwrap();
    assert_eq!(report.samples_accepted, 5);
    let before = dump(&db);
    let last_segment = |db: &Db| *db.wal.segments().last().unwrap();
    let first = last_segment(&db);
    db.maintain().unwrap();
    assert_eq!(db.stats().samples_in_blocks, 4);
    assert_eq!(last_segment(&db), first + 1, "one wal rotation per pass");
    drop(db);
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(dump(&db), before);
}

#[test]
fn metadata_texts_are_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let request = WriteRequest {
        series: Vec::new(),
        metadata: vec![MetricMetadata {
            metric_family_name: "up".into(),
            metric_type: MetricType::Gauge,
            help: "h".repeat(100_000),
            unit: "u".repeat(10_000),
        }],
    };
    db.append(&request).unwrap();
    db.append(&request).unwrap();
    let check = |db: &Db| {
        let stored = db.metadata();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].help.len(), 1024);
        assert_eq!(stored[0].unit.len(), 128);
    };
    check(&db);
    drop(db);
    check(&Db::open(dir.path(), options()).unwrap());
}
