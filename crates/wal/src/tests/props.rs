//! Property tests: round trip across rotations, torn tails, bit flips.

use proptest::prelude::*;
use proptest::sample::Index;

use super::{capture_warnings, file_len, open, options, replay_all, set_file_len, valid_len_at};
use crate::segment::segment_path;
use crate::{FsyncPolicy, RepairReport, SegmentId, Wal};

/// One appended record: where it went and where its frame ends in that segment.
#[derive(Debug, Clone)]
struct Written {
    segment: SegmentId,
    record: Vec<u8>,
    end: u64,
}

#[derive(Debug, Clone)]
enum Action {
    Append(Vec<u8>),
    Rotate,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Action::Append),
        1 => Just(Action::Rotate),
    ]
}

/// Runs `actions` on `wal` and returns what was written, with frame ends.
fn run(wal: &Wal, actions: &[Action]) -> Vec<Written> {
    let mut written = Vec::new();
    for action in actions {
        match action {
            Action::Append(record) => {
                let segment = wal.append(record).unwrap();
                written.push(Written {
                    segment,
                    record: record.clone(),
                    end: file_len(wal.dir(), segment),
                });
            }
            Action::Rotate => {
                wal.rotate().unwrap();
            }
        }
    }
    written
}

fn records_of(written: &[Written]) -> Vec<(SegmentId, Vec<u8>)> {
    written
        .iter()
        .map(|w| (w.segment, w.record.clone()))
        .collect()
}

fn ends_in(written: &[Written], segment: SegmentId) -> Vec<u64> {
    written
        .iter()
        .filter(|w| w.segment == segment)
        .map(|w| w.end)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_across_rotations_and_reopens(
        first in prop::collection::vec(action(), 0..40),
        second in prop::collection::vec(action(), 0..40),
        segment_size in 24u64..600,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path(), options(segment_size, FsyncPolicy::None));
        let mut written = run(&wal, &first);
        prop_assert_eq!(replay_all(&wal), records_of(&written));
        drop(wal);
        let (wal, report) = open(dir.path(), options(segment_size, FsyncPolicy::None));
        prop_assert_eq!(report, RepairReport::default());
        written.extend(run(&wal, &second));
        prop_assert_eq!(replay_all(&wal), records_of(&written));
        let segments = wal.segments();
        prop_assert!(segments.windows(2).all(|pair| pair[0] + 1 == pair[1]));
        let stats = wal.stats();
        prop_assert_eq!(stats.segments, segments.len() as u64);
        let on_disk: u64 = segments.iter().map(|&s| file_len(dir.path(), s)).sum();
        prop_assert_eq!(stats.bytes, on_disk);
    }

    #[test]
    fn torn_tail_keeps_exactly_the_whole_records(
        actions in prop::collection::vec(action(), 0..40),
        segment_size in 24u64..600,
        cut in any::<Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path(), options(segment_size, FsyncPolicy::None));
        let written = run(&wal, &actions);
        let last = *wal.segments().last().unwrap();
        drop(wal);
        let len = file_len(dir.path(), last);
        let cut = cut.index(len as usize + 1) as u64;
        set_file_len(dir.path(), last, cut);

        let (wal, report) = open(dir.path(), options(segment_size, FsyncPolicy::None));
        let valid_len = valid_len_at(cut, &ends_in(&written, last));
        prop_assert_eq!(report, RepairReport { truncated_bytes: cut - valid_len, removed_segments: 0 });
        let survivors: Vec<Written> = written
            .iter()
            .filter(|w| w.segment != last || w.end <= cut)
            .cloned()
            .collect();
        prop_assert_eq!(replay_all(&wal), records_of(&survivors));
        // The next segment follows the torn one, whether it survived or not.
        prop_assert_eq!(wal.append(b"next").unwrap(), last + 1);
    }

    #[test]
    fn bit_flip_gives_a_prefix_and_a_warning(
        actions in prop::collection::vec(action(), 1..40),
        segment_size in 24u64..600,
        segment_pick in any::<Index>(),
        offset_pick in any::<Index>(),
        bit in 0u8..8,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path(), options(segment_size, FsyncPolicy::None));
        let written = run(&wal, &actions);
        let segments = wal.segments();
        drop(wal);
        let flipped_index = segment_pick.index(segments.len());
        let flipped = segments[flipped_index];
        let path = segment_path(dir.path(), flipped);
        let mut bytes = std::fs::read(&path).unwrap();
        let offset = offset_pick.index(bytes.len());
        bytes[offset] ^= 1 << bit;
        std::fs::write(&path, &bytes).unwrap();

        let ((wal, report), logged) =
            capture_warnings(|| open(dir.path(), options(segment_size, FsyncPolicy::None)));
        let valid_len = valid_len_at(offset as u64, &ends_in(&written, flipped));
        prop_assert_eq!(report, RepairReport {
            truncated_bytes: bytes.len() as u64 - valid_len,
            removed_segments: (segments.len() - flipped_index - 1) as u64,
        });
        prop_assert!(logged.contains("wal repaired"), "no warning: {}", logged);
        let survivors: Vec<Written> = written
            .iter()
            .filter(|w| w.segment < flipped || (w.segment == flipped && w.end <= offset as u64))
            .cloned()
            .collect();
        prop_assert_eq!(replay_all(&wal), records_of(&survivors));
        // Reopening again finds nothing more to repair.
        drop(wal);
        let (_wal, report) = open(dir.path(), options(segment_size, FsyncPolicy::None));
        prop_assert_eq!(report, RepairReport::default());
    }
}
