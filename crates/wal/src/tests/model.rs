//! Model-based test: random operations and crashes against an in-memory model of
//! which segments exist and which records each must hold.

use proptest::prelude::*;
use proptest::sample::Index;

use super::{file_len, open, options, replay_all, set_file_len, valid_len_at};
use crate::segment::{HEADER_LEN, framed_len};
use crate::{FsyncPolicy, RepairReport, SegmentId, Wal, WalOptions};

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Rotate,
    /// Truncate before one of the segment ids (or one past the active one).
    TruncateBefore(Index),
    Sync,
    /// Drop without syncing, optionally cut the last segment (power loss of its tail),
    /// then reopen.
    Crash(Option<Index>),
    /// Clean close and reopen.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Op::Append),
        2 => Just(Op::Rotate),
        2 => any::<Index>().prop_map(Op::TruncateBefore),
        1 => Just(Op::Sync),
        2 => proptest::option::of(any::<Index>()).prop_map(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone)]
struct ModelSegment {
    id: SegmentId,
    len: u64,
    /// Records with the offset where each one's frame ends.
    records: Vec<(Vec<u8>, u64)>,
}

impl ModelSegment {
    fn new(id: SegmentId) -> ModelSegment {
        ModelSegment {
            id,
            len: HEADER_LEN,
            records: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Model {
    segment_size: u64,
    /// Segments on disk; the last is the active one.
    segments: Vec<ModelSegment>,
}

impl Model {
    fn active(&mut self) -> &mut ModelSegment {
        self.segments.last_mut().unwrap()
    }

    fn active_id(&self) -> SegmentId {
        self.segments.last().unwrap().id
    }

    fn start_segment(&mut self) -> SegmentId {
        let id = self.active_id() + 1;
        self.segments.push(ModelSegment::new(id));
        id
    }

    fn append(&mut self, record: &[u8]) -> SegmentId {
        let active = self.active();
        if !active.records.is_empty() && active.len >= self.segment_size {
            self.start_segment();
        }
        let active = self.active();
        active.len += framed_len(record.len());
        let end = active.len;
        active.records.push((record.to_vec(), end));
        active.id
    }

    fn truncate_before(&mut self, bound: SegmentId) -> usize {
        let bound = bound.min(self.active_id());
        let before = self.segments.len();
        self.segments.retain(|s| s.id >= bound);
        before - self.segments.len()
    }

    /// Cuts the last segment at `cut`; returns the repair the WAL must report.
    fn cut_tail(&mut self, cut: u64) -> RepairReport {
        let active = self.active();
        let ends: Vec<u64> = active.records.iter().map(|(_, end)| *end).collect();
        let valid_len = valid_len_at(cut, &ends);
        active.records.retain(|(_, end)| *end <= cut);
        active.len = valid_len;
        if valid_len == 0 {
            self.segments.pop();
        }
        RepairReport {
            truncated_bytes: cut - valid_len,
            removed_segments: 0,
        }
    }

    fn records(&self) -> Vec<(SegmentId, Vec<u8>)> {
        self.segments
            .iter()
            .flat_map(|s| s.records.iter().map(|(r, _)| (s.id, r.clone())))
            .collect()
    }

    fn ids(&self) -> Vec<SegmentId> {
        self.segments.iter().map(|s| s.id).collect()
    }
}

fn check(wal: &Wal, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(wal.segments(), model.ids());
    prop_assert_eq!(replay_all(wal), model.records());
    for segment in &model.segments {
        prop_assert_eq!(file_len(wal.dir(), segment.id), segment.len);
    }
    Ok(())
}

fn run_model(ops: &[Op], wal_options: WalOptions) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let (wal, report) = open(dir.path(), wal_options.clone());
    prop_assert_eq!(report, RepairReport::default());
    let mut wal = Some(wal);
    let mut model = Model {
        segment_size: wal_options.segment_size_bytes,
        segments: vec![ModelSegment::new(0)],
    };
    for op in ops {
        let Some(current) = wal.as_ref() else {
            unreachable!("the wal is reopened after every crash");
        };
        match op {
            Op::Append(record) => {
                prop_assert_eq!(current.append(record).unwrap(), model.append(record));
            }
            Op::Rotate => {
                prop_assert_eq!(current.rotate().unwrap(), model.start_segment());
            }
            Op::TruncateBefore(pick) => {
                let mut candidates = model.ids();
                candidates.push(model.active_id() + 1);
                let bound = candidates[pick.index(candidates.len())];
                prop_assert_eq!(
                    current.truncate_before(bound).unwrap(),
                    model.truncate_before(bound)
                );
            }
            Op::Sync => current.sync().unwrap(),
            Op::Crash(cut) => {
                let last = model.active_id();
                drop(wal.take());
                let expected = match cut {
                    Some(pick) => {
                        let cut = pick.index(file_len(dir.path(), last) as usize + 1) as u64;
                        set_file_len(dir.path(), last, cut);
                        model.cut_tail(cut)
                    }
                    None => RepairReport::default(),
                };
                let (reopened, report) = open(dir.path(), wal_options.clone());
                prop_assert_eq!(report, expected);
                model.segments.push(ModelSegment::new(last + 1));
                wal = Some(reopened);
            }
            Op::Reopen => {
                drop(wal.take());
                let (reopened, report) = open(dir.path(), wal_options.clone());
                prop_assert_eq!(report, RepairReport::default());
                model.start_segment();
                wal = Some(reopened);
            }
        }
        check(wal.as_ref().unwrap(), &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn wal_matches_model_without_fsync(
        ops in prop::collection::vec(op(), 1..60),
        segment_size in 24u64..400,
    ) {
        run_model(&ops, options(segment_size, FsyncPolicy::None))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn wal_matches_model_with_fsync(
        ops in prop::collection::vec(op(), 1..30),
        segment_size in 24u64..400,
        always in any::<bool>(),
    ) {
        let fsync = if always {
            FsyncPolicy::Always
        } else {
            FsyncPolicy::Batch { max_delay: std::time::Duration::from_millis(1) }
        };
        run_model(&ops, options(segment_size, fsync))?;
    }
}
