//! Housekeeping of a [`Db`]: cutting the head into blocks, truncating the WAL behind
//! them, compacting small blocks into larger ones and applying retention.

use std::path::Path;
use std::sync::Arc;

use sightline_model::Labels;

use crate::block::{Block, BlockWriter, LastGroup};
use crate::db::{Db, duration_millis, merge_parts};
use crate::wal_records::{RecordBuilder, RefExemplar};
use crate::{Error, Result};

const BOUNDARY_FILE: &str = "persisted_boundary";
const BOUNDARY_MAGIC: u32 = u32::from_le_bytes(*b"SLHB");
/// Series (or exemplars) per WAL record of a snapshot.
const SNAPSHOT_BATCH: usize = 10_000;
/// Largest compacted block when retention does not say otherwise.
const MAX_BLOCK_RANGE_MS: i64 = 24 * 3600 * 1000;

/// End of the block-range-aligned range containing `t`.
fn aligned_end(t: i64, range: i64) -> i64 {
    t.div_euclid(range).saturating_add(1).saturating_mul(range)
}

fn aligned_start(t: i64, range: i64) -> i64 {
    t.div_euclid(range).saturating_mul(range)
}

/// The persisted boundary recorded by the last cut (`i64::MIN` when none or corrupt).
pub(crate) fn read_boundary(dir: &Path) -> i64 {
    let Ok(bytes) = std::fs::read(dir.join(BOUNDARY_FILE)) else {
        return i64::MIN;
    };
    if bytes.len() != 16
        || bytes[..4] != BOUNDARY_MAGIC.to_le_bytes()
        || crc32c::crc32c(&bytes[..12]).to_le_bytes() != bytes[12..16]
    {
        tracing::warn!("persisted boundary file is corrupt; ignoring it");
        return i64::MIN;
    }
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[4..12]);
    i64::from_le_bytes(raw)
}

fn write_boundary(dir: &Path, boundary: i64) -> Result<()> {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&BOUNDARY_MAGIC.to_le_bytes());
    bytes.extend_from_slice(&boundary.to_le_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(format!("{BOUNDARY_FILE}.tmp"));
    let file_path = dir.join(BOUNDARY_FILE);
    {
        let file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut &file, &bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &file_path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

impl Db {
    /// Periodic housekeeping: cut the head into a block when it spans more than
    /// 1.5 × block_range, compact small blocks, apply retention, truncate the WAL.
    pub fn maintain(&self) -> Result<()> {
        let _maintenance = self.maintenance.lock();
        let range = self.block_range;
        let cuts = self.cut_while(|min, max| {
            let low = min.max(self.head.min_valid());
            (max.saturating_sub(low) > range.saturating_mul(3) / 2).then(|| aligned_end(low, range))
        });
        self.refresh_head_memory();
        cuts?;
        while self.compact_once()? {}
        self.apply_retention()?;
        Ok(())
    }

    /// Cuts blocks while `next(head_min, head_max)` names a boundary, then truncates
    /// the WAL once behind the last successful cut (one rotation and series snapshot
    /// however many ranges were cut).
    fn cut_while(&self, mut next: impl FnMut(i64, i64) -> Option<i64>) -> Result<()> {
        let mut persisted = None;
        let mut result = Ok(());
        while let Some((min, max)) = self.head.time_range() {
            let Some(boundary) = next(min, max) else {
                break;
            };
            if let Err(error) = self.cut(boundary) {
                result = Err(error);
                break;
            }
            persisted = Some(boundary);
        }
        if let Some(boundary) = persisted {
            self.truncate_wal(boundary)?;
        }
        result
    }

    /// Persists everything in the head to blocks now and truncates the WAL.
    pub fn flush(&self) -> Result<()> {
        let _maintenance = self.maintenance.lock();
        let cuts = self.cut_while(|min, max| {
            let low = min.max(self.head.min_valid());
            Some(aligned_end(low, self.block_range).min(max.saturating_add(1)))
        });
        self.refresh_head_memory();
        cuts
    }

    /// Writes the head's samples before `boundary` to a block and drops them from the
    /// head (the caller truncates the WAL behind them). On failure the boundary is
    /// moved back, so nothing is dropped and the next cut writes the samples again.
    fn cut(&self, boundary: i64) -> Result<()> {
        let previous = self.head.min_valid();
        // From here on, writes before the boundary are too old: the block is final.
        self.head.set_min_valid(boundary);
        if let Err(error) = self.write_cut_block(boundary) {
            tracing::error!(%error, boundary, "block cut failed: head keeps its samples");
            self.head.restore_min_valid(previous);
            return Err(error);
        }
        write_boundary(&self.dir, boundary)?;
        let removed = self.head.truncate(boundary);
        if removed > 0 {
            tracing::debug!(series = removed, "idle series removed from the head");
        }
        Ok(())
    }

    /// Writes every head sample before `boundary` to a new block. The head holds only
    /// data not yet in blocks, so it reads from the very start (a failed earlier cut
    /// may have left older samples behind).
    fn write_cut_block(&self, boundary: i64) -> Result<()> {
        #[cfg(test)]
        if self
            .fail_next_cut
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Error::Io(std::io::Error::other("injected cut failure")));
        }
        let first = self.head.time_range().map_or(boundary, |r| r.0);
        let range_start = aligned_start(first, self.block_range).min(boundary.saturating_sub(1));
        let mut writer = BlockWriter::create(&self.blocks_dir, range_start, boundary, 1)?;
        for (labels, series) in self.head.sorted_series() {
            let samples =
                self.head
                    .series_samples(&series, i64::MIN, boundary.saturating_sub(1))?;
            writer.add_series(&labels, &samples)?;
        }
        let written = writer.num_series();
        if let Some(path) = writer.finish()? {
            let block =
                Arc::new(Block::open(&path)?.with_cache(Arc::clone(&self.options.group_cache)));
            tracing::info!(
                path = %path.display(),
                series = written,
                samples = block.meta().num_samples,
                bytes = block.file_bytes(),
                "head cut into block"
            );
            let mut blocks = self.blocks.write();
            blocks.push(block);
            blocks.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
        }
        Ok(())
    }

    /// Starts a new WAL segment with a snapshot of the head's series, metadata and
    /// exemplars, then deletes segments that hold only samples before `boundary`.
    fn truncate_wal(&self, boundary: i64) -> Result<()> {
        let new_segment = {
            let _gate = self.wal_gate.write();
            self.wal.rotate()?
        };
        let mut records = Vec::new();
        self.head.for_each_series_batch(SNAPSHOT_BATCH, |batch| {
            let mut record = RecordBuilder::default();
            record.series(batch.iter().map(|(r, l)| (*r, l)));
            records.push(record.take());
        });
        let mut tail = RecordBuilder::default();
        tail.next_ref(u64::from(self.head.next_id()));
        tail.metadata(&self.metadata());
        records.push(tail.take());
        let exemplars: Vec<RefExemplar> = self.exemplars.lock().entries.iter().cloned().collect();
        for batch in exemplars.chunks(SNAPSHOT_BATCH) {
            let mut record = RecordBuilder::default();
            record.exemplars(batch);
            records.push(record.take());
        }
        for record in &records {
            self.log(record, None)?;
        }
        let cut_before = {
            let segments = self.segment_max_time.lock();
            segments
                .range(..new_segment)
                .find(|(_, newest)| **newest >= boundary)
                .map_or(new_segment, |(segment, _)| *segment)
        };
        let deleted = self.wal.truncate_before(cut_before)?;
        self.segment_max_time
            .lock()
            .retain(|segment, _| *segment >= cut_before);
        tracing::debug!(segments = deleted, before = cut_before, "wal truncated");
        Ok(())
    }

    /// Block sizes compaction builds: block_range × 3^k up to a tenth of the
    /// retention (or 24h without retention).
    fn compaction_ranges(&self) -> Vec<i64> {
        let retention = duration_millis(self.options.retention_time);
        let max = if retention > 0 {
            (retention / 10).min(MAX_BLOCK_RANGE_MS)
        } else {
            MAX_BLOCK_RANGE_MS
        };
        let mut ranges = vec![self.block_range];
        let mut next = self.block_range.saturating_mul(3);
        while next <= max {
            ranges.push(next);
            next = next.saturating_mul(3);
        }
        ranges
    }

    /// Merges one group of blocks that share an aligned range no longer written to;
    /// false when there was nothing to do.
    fn compact_once(&self) -> Result<bool> {
        let blocks = self.blocks.read().clone();
        let boundary = self.head.min_valid();
        for range in self.compaction_ranges() {
            let mut groups: std::collections::BTreeMap<i64, Vec<Arc<Block>>> = Default::default();
            for block in &blocks {
                let meta = block.meta();
                let start = aligned_start(meta.min_time, range);
                if aligned_start(meta.max_time, range) == start {
                    groups.entry(start).or_default().push(Arc::clone(block));
                }
            }
            for (start, group) in groups {
                let end = start.saturating_add(range);
                if group.len() < 2 || end > boundary {
                    continue;
                }
                self.merge_blocks(&group, start, end)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn merge_blocks(&self, inputs: &[Arc<Block>], start: i64, end: i64) -> Result<()> {
        let level = inputs.iter().map(|b| b.meta().level).max().unwrap_or(1) + 1;
        let mut writer = BlockWriter::create(&self.blocks_dir, start, end, level)?;
        let mut cursors: Vec<(usize, u32, Labels)> = inputs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.num_series() > 0)
            .map(|(i, b)| (i, 0, b.labels(0)))
            .collect();
        let mut last_groups: Vec<LastGroup> = inputs.iter().map(|_| LastGroup::default()).collect();
        while let Some(smallest) = cursors.iter().map(|c| c.2.clone()).min() {
            let mut parts = Vec::new();
            for cursor in cursors.iter_mut().filter(|c| c.2 == smallest) {
                let block = &inputs[cursor.0];
                parts.push(block.samples(cursor.1, &mut last_groups[cursor.0])?);
                cursor.1 += 1;
                cursor.2 = block.labels(cursor.1);
            }
            cursors.retain(|c| (c.1 as usize) < inputs[c.0].num_series());
            writer.add_series(&smallest, &merge_parts(parts))?;
        }
        let Some(path) = writer.finish()? else {
            return Err(Error::Corrupt(
                "compaction of non-empty blocks wrote nothing".into(),
            ));
        };
        let merged =
            Arc::new(Block::open(&path)?.with_cache(Arc::clone(&self.options.group_cache)));
        tracing::info!(
            inputs = inputs.len(),
            level,
            samples = merged.meta().num_samples,
            bytes = merged.file_bytes(),
            "blocks compacted"
        );
        {
            let mut blocks = self.blocks.write();
            blocks.retain(|b| !inputs.iter().any(|i| Arc::ptr_eq(i, b)));
            blocks.push(merged);
            blocks.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
        }
        for input in inputs {
            if let Err(error) = std::fs::remove_file(input.path()) {
                tracing::warn!(path = %input.path().display(), %error, "could not delete compacted block");
            }
        }
        Ok(())
    }

    /// Drops blocks past the retention time (relative to the newest stored sample,
    /// as Prometheus does) and, oldest first, beyond the retention size.
    fn apply_retention(&self) -> Result<()> {
        let blocks = self.blocks.read().clone();
        let newest = blocks
            .iter()
            .map(|b| b.meta().max_time)
            .chain(self.head.time_range().map(|r| r.1))
            .max();
        let mut doomed: Vec<Arc<Block>> = Vec::new();
        let retention = duration_millis(self.options.retention_time);
        if let Some(newest) = newest
            && retention > 0
        {
            let oldest_kept = newest.saturating_sub(retention);
            doomed.extend(
                blocks
                    .iter()
                    .filter(|b| b.meta().max_time < oldest_kept)
                    .cloned(),
            );
        }
        if self.options.retention_bytes > 0 {
            let mut total: u64 = blocks
                .iter()
                .filter(|b| !doomed.iter().any(|d| Arc::ptr_eq(d, b)))
                .map(|b| b.file_bytes())
                .sum();
            for block in &blocks {
                if total <= self.options.retention_bytes {
                    break;
                }
                if doomed.iter().any(|d| Arc::ptr_eq(d, block)) {
                    continue;
                }
                total -= block.file_bytes();
                doomed.push(Arc::clone(block));
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        self.blocks
            .write()
            .retain(|b| !doomed.iter().any(|d| Arc::ptr_eq(d, b)));
        for block in &doomed {
            tracing::info!(path = %block.path().display(), max_time = block.meta().max_time, "block dropped by retention");
            if let Err(error) = std::fs::remove_file(block.path()) {
                tracing::warn!(path = %block.path().display(), %error, "could not delete block");
            }
        }
        Ok(())
    }
}
