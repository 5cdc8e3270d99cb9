//! Group commit: an append is acknowledged only after an fsync that started after its
//! write; an fsync starts as soon as one is needed and none runs; writes made while
//! one runs share the next; a failure reaches every waiter.
//!
//! The fsync hook makes the interleavings deterministic: a test holds a data fsync
//! at its start until it lets it go, and sees which sequence number each one covers.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::{open, options};
use crate::{Error, FsyncPolicy, Wal};

/// Holds data fsyncs at their start until released; logs the sequence number each
/// one covers; fails the ones a test asks for.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    /// Fsyncs let through so far (they wait while this equals `started` - 1).
    released: usize,
    /// Whether fsyncs are held at all.
    holding: bool,
    /// Targets of the fsyncs that reached the hook, in order.
    targets: Vec<u64>,
    /// 1-based numbers of the fsyncs that fail.
    failing: Vec<usize>,
}

impl Gate {
    fn install(wal: &Wal, holding: bool, failing: Vec<usize>) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        {
            let mut state = gate.state.lock();
            state.holding = holding;
            state.failing = failing;
        }
        let hook_gate = Arc::clone(&gate);
        wal.shared
            .fsync_hook
            .set(move |target| hook_gate.pass(target));
        gate
    }

    fn pass(&self, target: u64) -> std::io::Result<()> {
        let mut state = self.state.lock();
        state.targets.push(target);
        let number = state.targets.len();
        self.changed.notify_all();
        while state.holding && state.released < number {
            self.changed.wait(&mut state);
        }
        if state.failing.contains(&number) {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        Ok(())
    }

    /// Waits until `count` fsyncs have reached the hook (fails after a minute: one
    /// that never comes is a bug, not a reason to hang).
    fn wait_started(&self, count: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut state = self.state.lock();
        while state.targets.len() < count {
            let timed_out = self.changed.wait_until(&mut state, deadline).timed_out();
            assert!(
                !timed_out,
                "fsync {count} never started: {:?}",
                state.targets
            );
        }
    }

    fn release_one(&self) {
        self.state.lock().released += 1;
        self.changed.notify_all();
    }

    fn release_all(&self) {
        self.state.lock().holding = false;
        self.changed.notify_all();
    }

    fn targets(&self) -> Vec<u64> {
        self.state.lock().targets.clone()
    }
}

fn wait_appended(wal: &Wal, count: u64) {
    while wal.stats().records_appended_total < count {
        std::thread::yield_now();
    }
}

fn open_batch(dir: &std::path::Path) -> Wal {
    let policy = FsyncPolicy::Batch {
        max_delay: Duration::ZERO,
    };
    open(dir, options(1 << 30, policy)).0
}

#[test]
fn a_lone_writer_gets_its_own_fsync_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_batch(dir.path());
    let gate = Gate::install(&wal, false, Vec::new());
    for expected in 1..=20u64 {
        let (_, seq) = wal.shared.append_seq(b"record").unwrap();
        assert_eq!(seq, expected);
        // Acknowledged after the fsync covering exactly this record.
        assert_eq!(gate.targets().last(), Some(&seq));
    }
    assert_eq!(wal.stats().fsyncs_total, 20);
}

#[test]
fn writes_made_during_an_fsync_share_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_batch(dir.path());
    let gate = Gate::install(&wal, true, Vec::new());
    std::thread::scope(|scope| {
        let first = scope.spawn(|| wal.shared.append_seq(b"first"));
        gate.wait_started(1);
        let (done_tx, done_rx) = mpsc::channel();
        let later: Vec<_> = (0..3)
            .map(|_| {
                let done_tx = done_tx.clone();
                let wal = &wal;
                scope.spawn(move || {
                    let result = wal.shared.append_seq(b"later");
                    done_tx.send(()).unwrap();
                    result
                })
            })
            .collect();
        wait_appended(&wal, 4);
        // Written, but the running fsync started before them: none is acknowledged.
        assert!(!first.is_finished());
        assert!(done_rx.try_recv().is_err());

        gate.release_one();
        assert_eq!(first.join().unwrap().unwrap().1, 1);
        // One more fsync, started once the first ended, covers all three.
        gate.wait_started(2);
        assert!(done_rx.try_recv().is_err(), "acknowledged before its fsync");
        gate.release_one();
        let mut seqs: Vec<u64> = later
            .into_iter()
            .map(|handle| handle.join().unwrap().unwrap().1)
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, vec![2, 3, 4]);
    });
    assert_eq!(gate.targets(), vec![1, 4]);
    assert_eq!(wal.stats().fsyncs_total, 2);
}

/// Fsync `failing` (1-based) fails while one writer leads and three wait.
fn failure_reaches_every_waiter(failing: usize) {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_batch(dir.path());
    let gate = Gate::install(&wal, true, vec![failing]);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| wal.append(b"first"));
        gate.wait_started(1);
        let later: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| wal.append(b"later")))
            .collect();
        wait_appended(&wal, 4);
        gate.release_all();
        let first = first.join().unwrap();
        let later: Vec<_> = later.into_iter().map(|h| h.join().unwrap()).collect();
        if failing == 1 {
            assert!(matches!(first, Err(Error::Poisoned(_))), "{first:?}");
        } else {
            assert!(first.is_ok(), "{first:?}");
        }
        for result in &later {
            assert!(matches!(result, Err(Error::Poisoned(_))), "{result:?}");
        }
    });
    // The log stays refused, and nothing after the failure counts as synced.
    assert!(matches!(wal.append(b"after"), Err(Error::Poisoned(_))));
    assert!(matches!(wal.wait_durable(), Err(Error::Poisoned(_))));
    assert_eq!(gate.targets().len(), failing);
}

#[test]
fn a_failed_fsync_fails_its_leader_and_every_waiter() {
    failure_reaches_every_waiter(1);
}

#[test]
fn a_failed_next_fsync_fails_the_writers_it_was_to_cover() {
    failure_reaches_every_waiter(2);
}

#[test]
fn poison_wakes_a_writer_waiting_for_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let policy = FsyncPolicy::Batch {
        max_delay: Duration::MAX,
    };
    let (wal, _) = open(dir.path(), options(1 << 20, policy));
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| wal.append(b"waits"));
        wait_appended(&wal, 1);
        wal.poison_for_tests("test");
        assert!(matches!(waiting.join().unwrap(), Err(Error::Poisoned(_))));
    });
}

#[test]
fn concurrent_writers_are_acknowledged_only_after_a_covering_fsync() {
    const THREADS: usize = 8;
    const APPENDS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let wal = open_batch(dir.path());
    // Fsyncs complete in hook order (one leader at a time, no rotation here): the
    // n-th completed fsync covers `targets[n - 1]`.
    let gate = Gate::install(&wal, false, Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..APPENDS {
                    let (_, seq) = wal.shared.append_seq(b"record").unwrap();
                    let completed = wal.stats().fsyncs_total as usize;
                    let targets = gate.targets();
                    assert!(completed >= 1 && targets[completed - 1] >= seq);
                }
            });
        }
    });
    let targets = gate.targets();
    let appended = (THREADS * APPENDS) as u64;
    assert_eq!(targets.last(), Some(&appended));
    // Every fsync covers at least one record no earlier fsync did: never more fsyncs
    // than acknowledgements.
    assert!(
        targets.windows(2).all(|pair| pair[0] < pair[1]),
        "{targets:?}"
    );
    assert!(targets.len() as u64 <= appended);
    assert_eq!(wal.stats().fsyncs_total, targets.len() as u64);
}
