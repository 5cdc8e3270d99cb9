//! Start-up check of every segment: a torn or corrupt tail is cut at the last good
//! record, and segments after a corrupt one are removed (as Prometheus' WAL repair
//! does), so that what remains is always a prefix of what was written.

use std::fs::OpenOptions;
use std::path::Path;

use crate::segment::{
    HEADER_LEN, HeaderStatus, SegmentReader, Step, io_error, list_segments, segment_path, sync_dir,
};
use crate::{Error, RepairReport, Result, SegmentId};

/// A segment that survived the repair, with its length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub(crate) id: SegmentId,
    pub(crate) bytes: u64,
}

/// What is left in the directory after [`recover`].
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) segments: Vec<SegmentInfo>,
    /// Id for the next new segment: above every id seen, removed ones included, so an
    /// id is never reused.
    pub(crate) next_id: SegmentId,
    pub(crate) report: RepairReport,
}

/// Checks every segment of `dir` in order and repairs the first problem found.
pub(crate) fn recover(dir: &Path) -> Result<Recovered> {
    let ids = list_segments(dir)?;
    warn_about_gaps(&ids);
    let next_id = match ids.last() {
        Some(&last) => last.checked_add(1).ok_or_else(|| Error::Io {
            path: segment_path(dir, last).display().to_string(),
            source: std::io::Error::other("segment ids exhausted"),
        })?,
        None => 0,
    };
    let mut segments = Vec::with_capacity(ids.len() + 1);
    let mut report = RepairReport::default();
    for (index, &id) in ids.iter().enumerate() {
        let scan = scan_segment(dir, id)?;
        let Some(problem) = scan.problem else {
            segments.push(SegmentInfo {
                id,
                bytes: scan.file_len,
            });
            continue;
        };
        let later = &ids[index + 1..];
        // Later segments go first, newest first: should we crash half-way, the corrupt
        // segment is still there to be found and repaired again next time.
        for &later_id in later.iter().rev() {
            let path = segment_path(dir, later_id);
            std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        }
        report.removed_segments = later.len() as u64;
        report.truncated_bytes = cut_segment(dir, id, problem.valid_len, scan.file_len)?;
        sync_dir(dir)?;
        if problem.valid_len >= HEADER_LEN {
            segments.push(SegmentInfo {
                id,
                bytes: problem.valid_len,
            });
        }
        tracing::warn!(
            segment = id,
            offset = problem.valid_len,
            reason = problem.reason,
            truncated_bytes = report.truncated_bytes,
            removed_segments = report.removed_segments,
            "wal repaired: cut at the last good record"
        );
        break;
    }
    Ok(Recovered {
        segments,
        next_id,
        report,
    })
}

#[derive(Debug)]
struct Problem {
    valid_len: u64,
    reason: &'static str,
}

#[derive(Debug)]
struct Scan {
    file_len: u64,
    problem: Option<Problem>,
}

fn scan_segment(dir: &Path, id: SegmentId) -> Result<Scan> {
    let mut reader =
        SegmentReader::open(dir, id, None).map_err(|e| io_error(&segment_path(dir, id), e))?;
    let file_len = reader.file_len();
    let problem = match reader.read_header()? {
        HeaderStatus::Valid => loop {
            match reader.next()? {
                Step::Record(_) => {}
                Step::End => break None,
                Step::Corrupt(corruption) => {
                    break Some(Problem {
                        valid_len: corruption.offset,
                        reason: corruption.reason,
                    });
                }
            }
        },
        HeaderStatus::Corrupt(reason) => Some(Problem {
            valid_len: 0,
            reason,
        }),
        HeaderStatus::UnsupportedVersion(version) => {
            return Err(Error::UnsupportedVersion {
                path: reader.path().display().to_string(),
                version,
            });
        }
    };
    Ok(Scan { file_len, problem })
}

/// Cuts segment `id` to `valid_len` bytes, or removes it when not even its header is
/// good. Returns how many bytes were cut.
fn cut_segment(dir: &Path, id: SegmentId, valid_len: u64, file_len: u64) -> Result<u64> {
    let path = segment_path(dir, id);
    if valid_len < HEADER_LEN {
        std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        return Ok(file_len);
    }
    let file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    file.set_len(valid_len).map_err(|e| io_error(&path, e))?;
    file.sync_all().map_err(|e| io_error(&path, e))?;
    Ok(file_len.saturating_sub(valid_len))
}

fn warn_about_gaps(ids: &[SegmentId]) {
    for pair in ids.windows(2) {
        if pair[1] != pair[0] + 1 {
            tracing::warn!(
                after = pair[0],
                before = pair[1],
                "wal segments are not contiguous: records may be missing between them"
            );
        }
    }
}
