//! Store-level tests: write-path semantics, queries, persistence, crash recovery,
//! compaction, retention and a model-based property test.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use sightline_model::time::{from_millis, to_millis};
use sightline_model::{
    Exemplar, Labels, MetricMetadata, MetricType, Sample, TimeSeries, WriteRequest,
};

use crate::{Db, DbOptions, Error, MatchOp, Matcher, RejectReason};

mod review_fixes;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn options() -> DbOptions {
    DbOptions {
        block_range: Duration::from_secs(3600),
        retention_time: Duration::ZERO,
        wal: sightline_wal::WalOptions {
            segment_size_bytes: 4096,
            fsync: sightline_wal::FsyncPolicy::None,
        },
        ..DbOptions::default()
    }
}

/// A base time (ms) a day ago, aligned to the hour.
fn base() -> i64 {
    let now = to_millis(sightline_model::time::now());
    (now - 24 * HOUR).div_euclid(HOUR) * HOUR
}

fn labels(name: &str, instance: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("instance", instance), ("job", "node")])
}

fn request(series: &Labels, samples: &[(i64, f64)]) -> WriteRequest {
    WriteRequest {
        series: vec![TimeSeries {
            labels: series.clone(),
            samples: samples
                .iter()
                .map(|&(t, v)| Sample {
                    timestamp: from_millis(t),
                    value: v,
                })
                .collect(),
            exemplars: Vec::new(),
        }],
        metadata: Vec::new(),
    }
}

fn all() -> Vec<Matcher> {
    vec![Matcher::new(MatchOp::RegexMatch, "__name__", ".+").unwrap()]
}

fn dump(db: &Db) -> BTreeMap<Labels, Vec<(i64, u64)>> {
    db.select(&all(), i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.labels,
                s.samples
                    .iter()
                    .map(|x| (to_millis(x.timestamp), x.value.to_bits()))
                    .collect(),
            )
        })
        .collect()
}

fn reasons(report: &crate::AppendReport) -> Vec<RejectReason> {
    report.rejected.iter().map(|r| r.reason).collect()
}

#[test]
fn write_path_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        DbOptions {
            max_series: 2,
            ..options()
        },
    )
    .unwrap();
    let t0 = base();
    let a = labels("up", "a");
    let report = db
        .append(&request(&a, &[(t0, 1.0), (t0 + 1000, 2.0)]))
        .unwrap();
    assert_eq!((report.samples_accepted, report.series_created), (2, 1));
    // Duplicate with the same value: a silent no-op; with another value: rejected.
    let report = db.append(&request(&a, &[(t0 + 1000, 2.0)])).unwrap();
    assert_eq!((report.samples_accepted, report.samples_rejected()), (1, 0));
    let report = db.append(&request(&a, &[(t0 + 1000, 3.0)])).unwrap();
    assert_eq!(reasons(&report), vec![RejectReason::DuplicateTimestamp]);
    assert!(
        report.rejected[0].example.contains("up{"),
        "{}",
        report.rejected[0].example
    );
    // Out of order inside the window is accepted and merged; outside it is rejected.
    let report = db
        .append(&request(&a, &[(t0 + 500, 1.5), (t0 - 20 * MINUTE, 0.0)]))
        .unwrap();
    assert_eq!(report.samples_accepted, 1);
    assert_eq!(reasons(&report), vec![RejectReason::OutOfOrder]);
    // An OOO duplicate of an in-order sample.
    let report = db.append(&request(&a, &[(t0, 9.0), (t0, 1.0)])).unwrap();
    assert_eq!(reasons(&report), vec![RejectReason::DuplicateTimestamp]);
    assert_eq!(report.samples_accepted, 1);
    // Future.
    let future = to_millis(sightline_model::time::now()) + HOUR;
    let report = db.append(&request(&a, &[(future, 1.0)])).unwrap();
    assert_eq!(reasons(&report), vec![RejectReason::TooFarInFuture]);
    // Series limit.
    db.append(&request(&labels("up", "b"), &[(t0, 1.0)]))
        .unwrap();
    let report = db
        .append(&request(&labels("up", "c"), &[(t0, 1.0), (t0 + 1, 1.0)]))
        .unwrap();
    assert_eq!(reasons(&report), vec![RejectReason::SeriesLimit]);
    assert_eq!(report.rejected[0].count, 2);

    let got = dump(&db);
    let a_samples: Vec<(i64, f64)> = got[&a]
        .iter()
        .map(|&(t, v)| (t - t0, f64::from_bits(v)))
        .collect();
    assert_eq!(a_samples, vec![(0, 1.0), (500, 1.5), (1000, 2.0)]);

    // After a flush, older samples are too old.
    db.flush().unwrap();
    assert_eq!(db.stats().head_series, 0);
    let report = db.append(&request(&a, &[(t0 + 999, 1.0)])).unwrap();
    assert_eq!(reasons(&report), vec![RejectReason::TooOld]);
    assert_eq!(dump(&db), got);
}

#[test]
fn queries_labels_metadata_exemplars() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let t0 = base();
    let mut request = WriteRequest::default();
    for (name, instance) in [("up", "a"), ("up", "b"), ("load", "a")] {
        request.series.push(TimeSeries {
            labels: labels(name, instance),
            samples: vec![Sample {
                timestamp: from_millis(t0),
                value: 1.0,
            }],
            exemplars: vec![Exemplar {
                labels: Labels::from_pairs([("trace_id", instance)]),
                timestamp: from_millis(t0),
                value: 1.0,
            }],
        });
    }
    request.metadata.push(MetricMetadata {
        metric_family_name: "up".into(),
        metric_type: MetricType::Gauge,
        help: "is it up".into(),
        unit: String::new(),
    });
    let report = db.append(&request).unwrap();
    assert_eq!(
        (
            report.samples_accepted,
            report.exemplars_accepted,
            report.series_created
        ),
        (3, 3, 3)
    );
    let check = |db: &Db| {
        let up = [Matcher::new(MatchOp::Equal, "__name__", "up").unwrap()];
        assert_eq!(db.select(&up, i64::MIN, i64::MAX).unwrap().len(), 2);
        let not_b = [Matcher::new(MatchOp::NotEqual, "instance", "b").unwrap()];
        assert_eq!(db.series(&not_b, i64::MIN, i64::MAX).unwrap().len(), 2);
        assert_eq!(
            db.label_names(&[], i64::MIN, i64::MAX).unwrap(),
            vec!["__name__", "instance", "job"]
        );
        assert_eq!(
            db.label_values("__name__", &[], i64::MIN, i64::MAX)
                .unwrap(),
            vec!["load", "up"]
        );
        assert_eq!(
            db.label_values("instance", &up, i64::MIN, i64::MAX)
                .unwrap(),
            vec!["a", "b"]
        );
        // Outside the time range nothing is found.
        let later = from_millis(t0 + 1);
        assert!(db.select(&up, later, i64::MAX).unwrap().is_empty());
        assert_eq!(db.metadata().len(), 1);
    };
    check(&db);
    let exemplars = db.exemplars(&all(), i64::MIN, i64::MAX).unwrap();
    assert_eq!(exemplars.len(), 3);
    drop(db);
    let db = Db::open(dir.path(), options()).unwrap();
    check(&db);
    assert_eq!(
        db.exemplars(&all(), i64::MIN, i64::MAX).unwrap().len(),
        3,
        "exemplars survive restart"
    );
    db.flush().unwrap();
    check(&db);
    assert_eq!(
        db.metadata()[0].help,
        "is it up",
        "metadata survives wal truncation"
    );
    drop(db);
    let db = Db::open(dir.path(), options()).unwrap();
    check(&db);
    assert_eq!(db.metadata().len(), 1);
    assert_eq!(
        db.exemplars(&all(), i64::MIN, i64::MAX).unwrap().len(),
        0,
        "series left the head"
    );
    assert!(matches!(
        Matcher::new(MatchOp::RegexMatch, "a", "("),
        Err(Error::InvalidRegex { .. })
    ));
}

fn block_files(dir: &Path, extension: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("blocks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect()
}

#[test]
fn corrupt_block_is_moved_aside_and_half_written_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = base();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        db.append(&request(&labels("up", "a"), &[(t0, 1.0)]))
            .unwrap();
        db.flush().unwrap();
        db.append(&request(&labels("up", "a"), &[(t0 + HOUR, 2.0)]))
            .unwrap();
        db.flush().unwrap();
        assert_eq!(db.stats().blocks, 2);
    }
    let blocks = block_files(dir.path(), "blk");
    let mut bytes = std::fs::read(&blocks[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&blocks[0], &bytes).unwrap();
    std::fs::write(dir.path().join("blocks/x.tmp"), b"half").unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(db.stats().blocks, 1);
    assert_eq!(block_files(dir.path(), "corrupt").len(), 1);
    assert!(block_files(dir.path(), "tmp").is_empty());
    assert_eq!(dump(&db).values().next().map(Vec::len), Some(1));
}

#[test]
fn parallel_loads_match_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    let cache = std::sync::Arc::new(crate::GroupCache::new(64 << 20));
    let opts = DbOptions {
        group_cache: std::sync::Arc::clone(&cache),
        ..options()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let t0 = base() - 6 * HOUR;
    let series: Vec<Labels> = (0..30).map(|i| labels("m", &i.to_string())).collect();
    for step in 0..(5 * 60) {
        let mut request = WriteRequest::default();
        for (i, s) in series.iter().enumerate() {
            // Series start at different times so the runs hold uneven work.
            if step < i as i64 * 7 {
                continue;
            }
            request.series.push(TimeSeries {
                labels: s.clone(),
                samples: vec![Sample {
                    timestamp: from_millis(t0 + step * MINUTE),
                    value: (step * i as i64) as f64 / 3.0,
                }],
                exemplars: Vec::new(),
            });
        }
        db.append(&request).unwrap();
    }
    db.flush().unwrap();
    // Cutting blocks reads none into the cache; queries do.
    assert_eq!(cache.bytes(), 0);
    // Some samples stay in the head, after the flushed blocks.
    for s in &series {
        db.append(&request(s, &[(t0 + 5 * HOUR + MINUTE, 1.0)]))
            .unwrap();
    }
    let window = (t0 + 30 * MINUTE, t0 + 5 * HOUR + MINUTE);
    let load = |max_samples: usize, threads: usize| {
        db.plan_select(&all(), window.0, window.1).load_in_threads(
            max_samples,
            Some(threads),
            &|_, samples| Ok::<_, crate::Error>(Some(std::mem::take(samples))),
        )
    };
    let one = load(usize::MAX, 1).unwrap();
    assert_eq!(one.len(), 30);
    // The groups the first read decompressed are kept, and read back the same.
    let cached = cache.bytes();
    assert!(cached > 0);
    assert_eq!(load(usize::MAX, 1).unwrap(), one);
    assert_eq!(cache.bytes(), cached);
    for threads in [2, 3, 7, 64] {
        let many = load(usize::MAX, threads).unwrap();
        assert_eq!(many, one, "{threads} threads");
    }
    // A map that reduces each series (and leaves the buffer to be reused) sees the
    // same samples, whatever the threads.
    let sums: Vec<(Labels, f64)> = one
        .iter()
        .map(|(labels, samples)| (labels.clone(), samples.iter().map(|s| s.1).sum()))
        .collect();
    for threads in [1, 3] {
        let reduced = db
            .plan_select(&all(), window.0, window.1)
            .load_in_threads(usize::MAX, Some(threads), &|_, samples| {
                Ok::<_, crate::Error>(Some(samples.iter().map(|s| s.1).sum::<f64>()))
            })
            .unwrap();
        assert_eq!(reduced, sums, "{threads} threads");
    }
    let total: usize = one.iter().map(|s| s.1.len()).sum();
    let error = load(total - 1, 3).unwrap_err();
    assert!(matches!(error, crate::Error::SampleLimit { .. }), "{error}");
}

#[test]
fn compaction_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DbOptions {
        retention_time: Duration::from_secs(30 * 3600),
        ..options()
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let t0 = base() - 24 * HOUR; // two days ago
    let series: Vec<Labels> = (0..20).map(|i| labels("m", &i.to_string())).collect();
    // 40 hours of 1-minute samples, maintained as we go (as the server does).
    for step in 0..(40 * 60) {
        let t = t0 + step * MINUTE;
        let mut request = WriteRequest::default();
        for s in &series {
            request.series.push(TimeSeries {
                labels: s.clone(),
                samples: vec![Sample {
                    timestamp: from_millis(t),
                    value: step as f64,
                }],
                exemplars: Vec::new(),
            });
        }
        assert_eq!(db.append(&request).unwrap().samples_accepted, 20);
        if step % 30 == 0 {
            db.maintain().unwrap();
        }
    }
    db.maintain().unwrap();
    let stats = db.stats();
    // Head keeps at most ~1.5h; blocks hold the rest, compacted to 3h blocks (the
    // largest range for 30h retention), and retention dropped what ended >30h ago.
    assert!(stats.blocks < 20, "{stats:?}");
    assert!(stats.wal_segments < 50, "{stats:?}");
    let newest = t0 + (40 * 60 - 1) * MINUTE;
    let oldest_kept = to_millis(stats.min_time.unwrap());
    assert!(
        oldest_kept >= newest - 33 * HOUR && oldest_kept <= newest - 29 * HOUR,
        "{stats:?}"
    );
    let dumped = dump(&db);
    assert_eq!(dumped.len(), 20);
    for samples in dumped.values() {
        // Contiguous 1-minute samples from the oldest kept to the newest.
        assert!(samples.windows(2).all(|w| w[1].0 - w[0].0 == MINUTE));
        assert_eq!(samples.last().unwrap().0, newest);
    }
    let bytes_per_sample = stats.block_bytes as f64 / stats.samples_in_blocks as f64;
    eprintln!(
        "blocks: {} bytes, {} samples, {bytes_per_sample:.3} bytes/sample",
        stats.block_bytes, stats.samples_in_blocks
    );
    drop(db);
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    assert_eq!(dump(&db), dumped);
    // Size retention drops oldest blocks first.
    drop(db);
    let db = Db::open(
        dir.path(),
        DbOptions {
            retention_bytes: 1,
            ..opts
        },
    )
    .unwrap();
    db.maintain().unwrap();
    assert_eq!(db.stats().blocks, 0);
}

#[test]
fn head_bytes_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let t0 = base();
    let n = 20_000;
    let metrics = [
        "node_cpu_seconds_total",
        "node_memory_MemFree_bytes",
        "node_network_receive_bytes_total",
        "node_filesystem_avail_bytes",
    ];
    for scrape in 0..4 {
        let mut request = WriteRequest::default();
        for i in 0..n {
            let labels = Labels::from_pairs([
                ("__name__", metrics[i % 4]),
                (
                    "instance",
                    &format!("host-{:04}.example.internal:9100", i / 200),
                ),
                ("job", "node-exporter"),
                ("cpu", &(i % 16).to_string()),
                ("mode", ["idle", "user", "system", "iowait"][(i / 16) % 4]),
                ("device", ["sda", "sdb", "eth0", "lo"][(i / 64) % 4]),
                ("region", "eu-west-1"),
                (
                    "az",
                    ["eu-west-1a", "eu-west-1b", "eu-west-1c"][(i / 200) % 3],
                ),
                ("env", "production"),
                ("team", ["infra", "storage", "network"][(i / 1000) % 3]),
            ]);
            request.series.push(TimeSeries {
                labels,
                samples: vec![Sample {
                    timestamp: from_millis(t0 + scrape * 15_000),
                    value: (i * scrape as usize) as f64,
                }],
                exemplars: Vec::new(),
            });
        }
        db.append(&request).unwrap();
    }
    db.maintain().unwrap(); // byte estimates are refreshed by maintenance
    let stats = db.stats();
    assert_eq!(stats.head_series, n as u64);
    let overhead = stats.head_series_overhead_bytes as f64 / n as f64;
    let total = stats.head_bytes as f64 / n as f64;
    eprintln!(
        "head: {overhead:.0} bytes/series without samples, {total:.0} bytes/series with 4 samples each"
    );
    assert!(overhead < 1000.0, "{overhead} bytes per series");
}

// ----- model-based property test -----

#[derive(Debug, Clone)]
enum Op {
    Append {
        series: usize,
        offset_minutes: i64,
        value: u8,
    },
    Maintain,
    Flush,
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0usize..4, 0i64..400, 0u8..4).prop_map(|(series, offset_minutes, value)| Op::Append { series, offset_minutes, value }),
        2 => Just(Op::Maintain),
        1 => Just(Op::Flush),
        2 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn model_based(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options();
        opts.block_range = Duration::from_secs(1800);
        let mut db = Some(Db::open(dir.path(), opts.clone()).unwrap());
        let t0 = base() - 8 * HOUR;
        let names: Vec<Labels> = (0..4).map(|i| labels("m", &i.to_string())).collect();
        let mut model: BTreeMap<Labels, BTreeMap<i64, u64>> = BTreeMap::new();
        // Time moves forward on average so cuts happen.
        let mut clock = 0i64;
        for op in ops {
            let current = db.as_ref().unwrap();
            match op {
                Op::Append { series, offset_minutes, value } => {
                    clock += 3;
                    let t = t0 + (clock + offset_minutes - 200) * MINUTE;
                    let v = f64::from(value);
                    let report = current.append(&request(&names[series], &[(t, v)])).unwrap();
                    let stored = model.get(&names[series]).and_then(|m| m.get(&t)).copied();
                    if report.samples_accepted == 1 {
                        prop_assert!(stored.is_none_or(|bits| bits == v.to_bits()));
                        model.entry(names[series].clone()).or_default().insert(t, v.to_bits());
                    } else {
                        prop_assert_eq!(report.samples_rejected(), 1);
                        if reasons(&report) == vec![RejectReason::DuplicateTimestamp] {
                            prop_assert!(stored.is_some_and(|bits| bits != v.to_bits()));
                        }
                    }
                }
                Op::Maintain => current.maintain().unwrap(),
                Op::Flush => current.flush().unwrap(),
                Op::Reopen => {
                    drop(db.take()); // crash: no close
                    db = Some(Db::open(dir.path(), opts.clone()).unwrap());
                }
            }
            let expected: BTreeMap<Labels, Vec<(i64, u64)>> = model
                .iter()
                .map(|(l, m)| (l.clone(), m.iter().map(|(t, v)| (*t, *v)).collect()))
                .collect();
            prop_assert_eq!(dump(db.as_ref().unwrap()), expected);
        }
    }
}

#[test]
fn db_is_send_sync_and_concurrent_appends_are_kept() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Db>();
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(Db::open(dir.path(), options()).unwrap());
    let t0 = base();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let db = std::sync::Arc::clone(&db);
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                for step in 0..300i64 {
                    barrier.wait();
                    let t = t0 + step * MINUTE;
                    let mut request = WriteRequest::default();
                    for s in 0..5 {
                        request.series.push(TimeSeries {
                            labels: labels("m", &format!("{thread}-{s}")),
                            samples: vec![Sample {
                                timestamp: from_millis(t),
                                value: step as f64,
                            }],
                            exemplars: Vec::new(),
                        });
                    }
                    // Shared series written by every thread: duplicates are no-ops.
                    request.series.push(TimeSeries {
                        labels: labels("shared", "x"),
                        samples: vec![Sample {
                            timestamp: from_millis(t),
                            value: 1.0,
                        }],
                        exemplars: Vec::new(),
                    });
                    let report = db.append(&request).unwrap();
                    assert_eq!(report.samples_rejected(), 0, "{report:?}");
                    if thread == 0 && step % 20 == 0 {
                        db.maintain().unwrap();
                        let _ = db.select(&all(), i64::MIN, i64::MAX).unwrap();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let check = |db: &Db| {
        let dumped = dump(db);
        assert_eq!(dumped.len(), 21);
        for samples in dumped.values() {
            assert_eq!(samples.len(), 300);
        }
    };
    check(&db);
    assert!(db.stats().blocks > 0);
    drop(db);
    check(&Db::open(dir.path(), options()).unwrap());
}

/// Disk bytes per sample for node-exporter-like data (printed; bounded loosely).
#[test]
fn block_bytes_per_sample_realistic() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let t0 = base() - 6 * HOUR;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let series = 150;
    let mut counters = vec![0f64; series];
    let mut gauges = vec![50f64; series];
    for step in 0..(4 * 60 * 4) {
        let mut request = WriteRequest::default();
        for i in 0..series {
            // Scrape timestamps jitter by a few ms, as real scrapes do.
            let t = t0 + step * 15_000 + (random() % 5) as i64;
            let value = match i % 3 {
                0 => {
                    counters[i] += (random() % 5000) as f64;
                    counters[i]
                }
                1 => {
                    gauges[i] = ((gauges[i] * 100.0 + (random() % 201) as f64 - 100.0).round()
                        / 100.0)
                        .abs();
                    gauges[i]
                }
                _ => (i % 7) as f64,
            };
            request.series.push(TimeSeries {
                labels: labels(["c_total", "g", "k"][i % 3], &i.to_string()),
                samples: vec![Sample {
                    timestamp: from_millis(t),
                    value,
                }],
                exemplars: Vec::new(),
            });
        }
        db.append(&request).unwrap();
    }
    db.flush().unwrap();
    db.maintain().unwrap();
    let stats = db.stats();
    let per_sample = stats.block_bytes as f64 / stats.samples_in_blocks as f64;
    eprintln!(
        "realistic: {} samples, {} bytes, {per_sample:.3} bytes/sample",
        stats.samples_in_blocks, stats.block_bytes
    );
    assert!(per_sample < 2.0);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A crash after the block was renamed into place but before the boundary file was
/// written and the WAL truncated: replay must not duplicate or lose samples.
#[test]
fn crash_between_block_rename_and_wal_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let saved_wal = tempfile::tempdir().unwrap();
    let t0 = base();
    let db = Db::open(dir.path(), options()).unwrap();
    for step in 0..200 {
        let samples = [(t0 + step * MINUTE, step as f64)];
        db.append(&request(&labels("up", "a"), &samples)).unwrap();
        db.append(&request(&labels("up", &format!("s{}", step % 7)), &samples))
            .unwrap();
    }
    let before = dump(&db);
    copy_dir(&dir.path().join("wal"), saved_wal.path());
    db.maintain().unwrap();
    assert!(db.stats().blocks > 0);
    drop(db);
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    std::fs::remove_file(dir.path().join("persisted_boundary")).unwrap();
    copy_dir(saved_wal.path(), &dir.path().join("wal"));
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(dump(&db), before);
    // The head only holds what the blocks do not.
    let stats = db.stats();
    assert_eq!(stats.head_samples + stats.samples_in_blocks, 400);
    db.flush().unwrap();
    drop(db);
    assert_eq!(dump(&Db::open(dir.path(), options()).unwrap()), before);
}

#[test]
fn closed_chunks_are_read_from_their_files_and_the_files_go_with_the_flush() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let t0 = base();
    let a = labels("up", "a");
    // 3.5 chunks of samples, within one block window.
    let samples: Vec<(i64, f64)> = (0..420).map(|i| (t0 + i * 1000, i as f64)).collect();
    db.append(&request(&a, &samples)).unwrap();
    let chunk_files = || {
        std::fs::read_dir(dir.path().join("head_chunks"))
            .unwrap()
            .count()
    };
    assert_eq!(chunk_files(), 1, "closed chunks were written out");
    let got = dump(&db);
    let values: Vec<(i64, f64)> = got[&a]
        .iter()
        .map(|&(t, v)| (t, f64::from_bits(v)))
        .collect();
    assert_eq!(values, samples);

    db.flush().unwrap();
    assert_eq!(
        chunk_files(),
        0,
        "the head dropped every chunk of the window"
    );
    assert_eq!(dump(&db), got, "now read from the block");
}

proptest! {
    /// Merging a series' parts: ascending, one sample per timestamp, the first part
    /// holding a timestamp wins; whether the parts follow each other in time (the
    /// concatenation shortcut) or overlap (sort and dedup).
    #[test]
    fn merge_parts_matches_an_ordered_map(
        parts in prop::collection::vec(
            prop::collection::btree_map(0i64..60, -5i32..5, 0..12),
            0..5,
        ),
        shift_apart in any::<bool>(),
    ) {
        let parts: Vec<Vec<(i64, f64)>> = parts
            .iter()
            .enumerate()
            .map(|(index, part)| {
                let offset = if shift_apart { index as i64 * 100 } else { 0 };
                part.iter().map(|(t, v)| (t + offset, f64::from(*v))).collect()
            })
            .collect();
        let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
        for part in &parts {
            for (t, v) in part {
                expected.entry(*t).or_insert(*v);
            }
        }
        let expected: Vec<(i64, f64)> = expected.into_iter().collect();
        prop_assert_eq!(crate::db::merge_parts(parts), expected);
    }
}
