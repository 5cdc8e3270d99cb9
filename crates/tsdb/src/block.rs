//! Immutable block files: every sample of a time range, zstd-compressed in groups of
//! series, plus an index of label sets and per-series group slots. Written to a
//! temporary name, fsynced and renamed into place; checked (lengths and CRC-32C of
//! every section) when opened. The format is described in `crates/tsdb/FORMAT.md`.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sightline_model::{Label, Labels};

use crate::encoding::{Reader, put_str, put_uvarint, put_varint};
use crate::index::LabelIndex;
use crate::series_codec;
use crate::{Error, Result};

/// "SLTB" little-endian: the first and last four bytes of every block file.
pub(crate) const MAGIC: u32 = u32::from_le_bytes(*b"SLTB");
pub(crate) const VERSION: u32 = 1;
const HEADER_LEN: u64 = 8;
const FOOTER_LEN: u64 = 32;
/// A group is closed once its uncompressed streams reach this size.
const GROUP_TARGET_BYTES: usize = 256 << 10;
/// Refuse groups claiming more than this uncompressed (a corrupt length).
const MAX_GROUP_RAW_BYTES: usize = 512 << 20;
const ZSTD_LEVEL: i32 = 9;
pub(crate) const BLOCK_EXTENSION: &str = "blk";
pub(crate) const TMP_EXTENSION: &str = "tmp";

/// What a block covers. Times are milliseconds; `range_end` is exclusive and is the
/// head's persisted boundary once the block exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockMeta {
    pub(crate) min_time: i64,
    pub(crate) max_time: i64,
    pub(crate) range_start: i64,
    pub(crate) range_end: i64,
    pub(crate) level: u32,
    pub(crate) num_series: u64,
    pub(crate) num_samples: u64,
}

#[derive(Debug, Clone, Copy)]
struct GroupEntry {
    offset: u64,
    compressed_len: u64,
    raw_len: u64,
    crc: u32,
    num_series: u32,
}

/// Writes one block file; series must be added in ascending label order.
#[derive(Debug)]
pub(crate) struct BlockWriter {
    tmp_path: PathBuf,
    final_path: PathBuf,
    file: Option<BufWriter<File>>,
    offset: u64,
    ts_buffer: Vec<u8>,
    value_buffer: Vec<u8>,
    stream_lengths: Vec<(usize, usize)>,
    groups: Vec<GroupEntry>,
    series: Vec<(Labels, i64, i64, u64)>,
    meta: BlockMeta,
}

impl BlockWriter {
    pub(crate) fn create(
        dir: &Path,
        range_start: i64,
        range_end: i64,
        level: u32,
    ) -> Result<BlockWriter> {
        let unique = sightline_model::time::now();
        let name = format!(
            "{:016x}-{:016x}-{:016x}",
            range_start as u64, range_end as u64, unique as u64
        );
        let final_path = dir.join(format!("{name}.{BLOCK_EXTENSION}"));
        let tmp_path = dir.join(format!("{name}.{TMP_EXTENSION}"));
        let mut file = BufWriter::new(File::create(&tmp_path)?);
        file.write_all(&MAGIC.to_le_bytes())?;
        file.write_all(&VERSION.to_le_bytes())?;
        Ok(BlockWriter {
            tmp_path,
            final_path,
            file: Some(file),
            offset: HEADER_LEN,
            ts_buffer: Vec::new(),
            value_buffer: Vec::new(),
            stream_lengths: Vec::new(),
            groups: Vec::new(),
            series: Vec::new(),
            meta: BlockMeta {
                min_time: i64::MAX,
                max_time: i64::MIN,
                range_start,
                range_end,
                level,
                num_series: 0,
                num_samples: 0,
            },
        })
    }

    /// Adds one series' samples (ascending, unique timestamps); empty ones are skipped.
    pub(crate) fn add_series(&mut self, labels: &Labels, samples: &[(i64, f64)]) -> Result<()> {
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return Ok(());
        };
        debug_assert!(self.series.last().is_none_or(|(prev, ..)| prev < labels));
        let ts_start = self.ts_buffer.len();
        let value_start = self.value_buffer.len();
        series_codec::encode_timestamps(samples, &mut self.ts_buffer);
        series_codec::encode_values(samples, &mut self.value_buffer);
        self.stream_lengths.push((
            self.ts_buffer.len() - ts_start,
            self.value_buffer.len() - value_start,
        ));
        self.series
            .push((labels.clone(), first.0, last.0, samples.len() as u64));
        self.meta.min_time = self.meta.min_time.min(first.0);
        self.meta.max_time = self.meta.max_time.max(last.0);
        self.meta.num_series += 1;
        self.meta.num_samples += samples.len() as u64;
        if self.ts_buffer.len() + self.value_buffer.len() >= GROUP_TARGET_BYTES {
            self.flush_group()?;
        }
        Ok(())
    }

    pub(crate) fn num_series(&self) -> u64 {
        self.meta.num_series
    }

    fn flush_group(&mut self) -> Result<()> {
        if self.stream_lengths.is_empty() {
            return Ok(());
        }
        let mut raw = Vec::with_capacity(self.ts_buffer.len() + self.value_buffer.len() + 64);
        put_uvarint(&mut raw, self.stream_lengths.len() as u64);
        for &(ts_len, value_len) in &self.stream_lengths {
            put_uvarint(&mut raw, ts_len as u64);
            put_uvarint(&mut raw, value_len as u64);
        }
        raw.extend_from_slice(&self.ts_buffer);
        raw.extend_from_slice(&self.value_buffer);
        let compressed = zstd::bulk::compress(&raw, ZSTD_LEVEL)?;
        self.writer()?.write_all(&compressed)?;
        self.groups.push(GroupEntry {
            offset: self.offset,
            compressed_len: compressed.len() as u64,
            raw_len: raw.len() as u64,
            crc: crc32c::crc32c(&compressed),
            num_series: self.stream_lengths.len() as u32,
        });
        self.offset += compressed.len() as u64;
        self.ts_buffer.clear();
        self.value_buffer.clear();
        self.stream_lengths.clear();
        Ok(())
    }

    /// Writes index and footer, fsyncs, renames into place; returns the final path.
    /// Nothing is written when no series was added (returns `None`).
    pub(crate) fn finish(mut self) -> Result<Option<PathBuf>> {
        if self.series.is_empty() {
            drop(self.file.take());
            std::fs::remove_file(&self.tmp_path)?;
            return Ok(None);
        }
        self.flush_group()?;
        let index = self.encode_index();
        let index_crc = crc32c::crc32c(&index);
        self.writer()?.write_all(&index)?;
        let mut footer = Vec::with_capacity(FOOTER_LEN as usize);
        footer.extend_from_slice(&self.offset.to_le_bytes());
        footer.extend_from_slice(&(index.len() as u64).to_le_bytes());
        footer.extend_from_slice(&index_crc.to_le_bytes());
        footer.extend_from_slice(&crc32c::crc32c(&footer).to_le_bytes());
        footer.extend_from_slice(&VERSION.to_le_bytes());
        footer.extend_from_slice(&MAGIC.to_le_bytes());
        self.writer()?.write_all(&footer)?;
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::Corrupt("block writer already finished".into()))?
            .into_inner()
            .map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp_path, &self.final_path)?;
        if let Some(dir) = self.final_path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(Some(self.final_path.clone()))
    }

    fn writer(&mut self) -> Result<&mut BufWriter<File>> {
        self.file
            .as_mut()
            .ok_or_else(|| Error::Corrupt("block writer already finished".into()))
    }

    fn encode_index(&self) -> Vec<u8> {
        let mut symbols = BTreeSet::new();
        for (labels, ..) in &self.series {
            for label in labels {
                symbols.insert(label.name.as_str());
                symbols.insert(label.value.as_str());
            }
        }
        let symbols: Vec<&str> = symbols.into_iter().collect();
        let symbol_id = |s: &str| symbols.binary_search(&s).unwrap_or(0) as u64;
        let mut out = Vec::new();
        let meta = &self.meta;
        put_varint(&mut out, meta.min_time);
        put_varint(&mut out, meta.max_time);
        put_varint(&mut out, meta.range_start);
        put_varint(&mut out, meta.range_end);
        put_uvarint(&mut out, u64::from(meta.level));
        put_uvarint(&mut out, meta.num_samples);
        put_uvarint(&mut out, symbols.len() as u64);
        for symbol in &symbols {
            put_str(&mut out, symbol);
        }
        put_uvarint(&mut out, self.groups.len() as u64);
        for group in &self.groups {
            put_uvarint(&mut out, group.offset);
            put_uvarint(&mut out, group.compressed_len);
            put_uvarint(&mut out, group.raw_len);
            out.extend_from_slice(&group.crc.to_le_bytes());
            put_uvarint(&mut out, u64::from(group.num_series));
        }
        put_uvarint(&mut out, self.series.len() as u64);
        for (labels, min_time, max_time, num_samples) in &self.series {
            put_uvarint(&mut out, labels.len() as u64);
            for label in labels {
                put_uvarint(&mut out, symbol_id(&label.name));
                put_uvarint(&mut out, symbol_id(&label.value));
            }
            put_varint(&mut out, *min_time);
            put_varint(&mut out, *max_time);
            put_uvarint(&mut out, *num_samples);
        }
        out
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // An abandoned writer leaves no temp file behind; after `finish` the temp
        // name no longer exists.
        if self.file.is_some() {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[derive(Debug)]
struct BlockSeries {
    labels: Box<[u32]>,
    group: u32,
    slot: u32,
    min_time: i64,
    max_time: i64,
}

#[derive(Debug)]
struct DecodedGroup {
    raw: Vec<u8>,
    /// Per slot: (timestamp stream range, value stream range) in `raw`.
    streams: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
}

/// An open block: its index in memory, its sample groups read on demand.
#[derive(Debug)]
pub(crate) struct Block {
    path: PathBuf,
    file: File,
    file_bytes: u64,
    meta: BlockMeta,
    symbols: Vec<Arc<str>>,
    series: Vec<BlockSeries>,
    groups: Vec<GroupEntry>,
    index: LabelIndex,
    last_group: Mutex<Option<(u32, Arc<DecodedGroup>)>>,
}

fn corrupt(path: &Path, detail: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("block {}: {detail}", path.display()))
}

impl Block {
    /// Opens and fully checks a block file: header, footer, index CRC and the CRC of
    /// every sample group. Any mismatch is [`Error::Corrupt`].
    pub(crate) fn open(path: &Path) -> Result<Block> {
        let file = File::open(path)?;
        let file_bytes = file.metadata()?.len();
        if file_bytes < HEADER_LEN + FOOTER_LEN {
            return Err(corrupt(path, "file too short"));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)?;
        let mut reader = Reader::new(&header, "block header");
        if reader.u32_le()? != MAGIC {
            return Err(corrupt(path, "bad magic number"));
        }
        let version = reader.u32_le()?;
        if version != VERSION {
            return Err(corrupt(
                path,
                format!("unsupported format version {version}"),
            ));
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        file.read_exact_at(&mut footer, file_bytes - FOOTER_LEN)?;
        let mut reader = Reader::new(&footer, "block footer");
        let index_offset = reader.u64_le()?;
        let index_len = reader.u64_le()?;
        let index_crc = reader.u32_le()?;
        let footer_crc = reader.u32_le()?;
        let footer_version = reader.u32_le()?;
        if reader.u32_le()? != MAGIC
            || footer_version != VERSION
            || crc32c::crc32c(&footer[..20]) != footer_crc
        {
            return Err(corrupt(path, "bad footer"));
        }
        let index_end = index_offset.checked_add(index_len);
        if index_offset < HEADER_LEN || index_end != Some(file_bytes - FOOTER_LEN) {
            return Err(corrupt(path, "index out of bounds"));
        }
        let mut index_bytes = vec![0u8; index_len as usize];
        file.read_exact_at(&mut index_bytes, index_offset)?;
        if crc32c::crc32c(&index_bytes) != index_crc {
            return Err(corrupt(path, "index checksum mismatch"));
        }
        let mut block = Block::parse_index(path, file, file_bytes, &index_bytes, index_offset)?;
        block.verify_groups()?;
        let mut index = LabelIndex::default();
        for (id, series) in block.series.iter().enumerate() {
            let pairs = series.labels.chunks_exact(2).map(|pair| {
                (
                    &block.symbols[pair[0] as usize],
                    &block.symbols[pair[1] as usize],
                )
            });
            index.add(id as u32, pairs);
        }
        block.index = index;
        Ok(block)
    }

    fn parse_index(
        path: &Path,
        file: File,
        file_bytes: u64,
        bytes: &[u8],
        data_end: u64,
    ) -> Result<Block> {
        let mut reader = Reader::new(bytes, "block index");
        let min_time = reader.varint()?;
        let max_time = reader.varint()?;
        let range_start = reader.varint()?;
        let range_end = reader.varint()?;
        let level = u32::try_from(reader.uvarint()?).map_err(|_| corrupt(path, "level"))?;
        let num_samples = reader.uvarint()?;
        let symbol_count = reader.len(reader.remaining())?;
        let mut symbols: Vec<Arc<str>> = Vec::with_capacity(symbol_count);
        for _ in 0..symbol_count {
            symbols.push(Arc::from(reader.str()?));
        }
        let group_count = reader.len(reader.remaining())?;
        let mut groups = Vec::with_capacity(group_count);
        let mut expected_offset = HEADER_LEN;
        for _ in 0..group_count {
            let group = GroupEntry {
                offset: reader.uvarint()?,
                compressed_len: reader.uvarint()?,
                raw_len: reader.uvarint()?,
                crc: reader.u32_le()?,
                num_series: u32::try_from(reader.uvarint()?)
                    .map_err(|_| corrupt(path, "group series count"))?,
            };
            if group.offset != expected_offset || group.raw_len > MAX_GROUP_RAW_BYTES as u64 {
                return Err(corrupt(path, "group table"));
            }
            expected_offset = group
                .offset
                .checked_add(group.compressed_len)
                .ok_or_else(|| corrupt(path, "group table"))?;
            groups.push(group);
        }
        if expected_offset != data_end {
            return Err(corrupt(path, "groups do not fill the data section"));
        }
        let series_count = reader.len(reader.remaining())?;
        let mut series = Vec::with_capacity(series_count);
        let mut group_iter = groups.iter().enumerate();
        let mut current = group_iter.next();
        let mut slot = 0u32;
        for _ in 0..series_count {
            while let Some((_, group)) = current {
                if slot < group.num_series {
                    break;
                }
                current = group_iter.next();
                slot = 0;
            }
            let Some((group_index, _)) = current else {
                return Err(corrupt(path, "more series than group slots"));
            };
            let label_count = reader.len(reader.remaining())?;
            let mut labels = Vec::with_capacity(label_count * 2);
            for _ in 0..label_count * 2 {
                let id = reader.uvarint()?;
                if id >= symbols.len() as u64 {
                    return Err(corrupt(path, "symbol id out of range"));
                }
                labels.push(id as u32);
            }
            for i in (2..labels.len()).step_by(2) {
                if symbols[labels[i - 2] as usize] >= symbols[labels[i] as usize] {
                    return Err(corrupt(path, "labels not sorted"));
                }
            }
            let min_time = reader.varint()?;
            let max_time = reader.varint()?;
            let _num_samples = reader.uvarint()?;
            series.push(BlockSeries {
                labels: labels.into_boxed_slice(),
                group: group_index as u32,
                slot,
                min_time,
                max_time,
            });
            slot += 1;
        }
        if !reader.is_empty() {
            return Err(corrupt(path, "trailing bytes in index"));
        }
        Ok(Block {
            path: path.to_path_buf(),
            file,
            file_bytes,
            meta: BlockMeta {
                min_time,
                max_time,
                range_start,
                range_end,
                level,
                num_series: series.len() as u64,
                num_samples,
            },
            symbols,
            series,
            groups,
            index: LabelIndex::default(),
            last_group: Mutex::new(None),
        })
    }

    fn verify_groups(&self) -> Result<()> {
        for group in &self.groups {
            self.read_group_bytes(group)?;
        }
        Ok(())
    }

    fn read_group_bytes(&self, group: &GroupEntry) -> Result<Vec<u8>> {
        let len = usize::try_from(group.compressed_len)
            .map_err(|_| corrupt(&self.path, "group length"))?;
        let mut bytes = vec![0u8; len];
        self.file.read_exact_at(&mut bytes, group.offset)?;
        if crc32c::crc32c(&bytes) != group.crc {
            return Err(corrupt(&self.path, "group checksum mismatch"));
        }
        Ok(bytes)
    }

    fn group(&self, group_index: u32) -> Result<Arc<DecodedGroup>> {
        if let Some((cached, group)) = &*self.last_group.lock()
            && *cached == group_index
        {
            return Ok(Arc::clone(group));
        }
        let entry = self
            .groups
            .get(group_index as usize)
            .ok_or_else(|| corrupt(&self.path, "group index"))?;
        let compressed = self.read_group_bytes(entry)?;
        let raw = zstd::bulk::decompress(&compressed, entry.raw_len as usize)
            .map_err(|e| corrupt(&self.path, format!("group decompression: {e}")))?;
        let mut reader = Reader::new(&raw, "block group");
        let count = reader.len(raw.len())?;
        if count != entry.num_series as usize {
            return Err(corrupt(&self.path, "group series count"));
        }
        let mut lengths = Vec::with_capacity(count);
        for _ in 0..count {
            lengths.push((reader.len(raw.len())?, reader.len(raw.len())?));
        }
        let mut position = raw.len() - reader.remaining();
        let mut streams = Vec::with_capacity(count);
        for &(ts_len, _) in &lengths {
            streams.push((position..position + ts_len, 0..0));
            position += ts_len;
        }
        for (slot, &(_, value_len)) in lengths.iter().enumerate() {
            streams[slot].1 = position..position + value_len;
            position += value_len;
        }
        if position != raw.len() {
            return Err(corrupt(&self.path, "group stream lengths"));
        }
        let decoded = Arc::new(DecodedGroup { raw, streams });
        *self.last_group.lock() = Some((group_index, Arc::clone(&decoded)));
        Ok(decoded)
    }

    pub(crate) fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    pub(crate) fn index(&self) -> &LabelIndex {
        &self.index
    }

    pub(crate) fn num_series(&self) -> usize {
        self.series.len()
    }

    pub(crate) fn series_time_range(&self, id: u32) -> Option<(i64, i64)> {
        self.series
            .get(id as usize)
            .map(|s| (s.min_time, s.max_time))
    }

    pub(crate) fn labels(&self, id: u32) -> Labels {
        let Some(series) = self.series.get(id as usize) else {
            return Labels::empty();
        };
        let labels = series
            .labels
            .chunks_exact(2)
            .map(|pair| {
                Label::new(
                    &*self.symbols[pair[0] as usize],
                    &*self.symbols[pair[1] as usize],
                )
            })
            .collect();
        Labels::from_sorted_unchecked(labels)
    }

    /// All samples of series `id`.
    pub(crate) fn samples(&self, id: u32) -> Result<Vec<(i64, f64)>> {
        let series = self
            .series
            .get(id as usize)
            .ok_or_else(|| corrupt(&self.path, "series id"))?;
        let group = self.group(series.group)?;
        let (ts_range, value_range) = group
            .streams
            .get(series.slot as usize)
            .cloned()
            .ok_or_else(|| corrupt(&self.path, "series slot"))?;
        let times = series_codec::decode_timestamps(&group.raw[ts_range])?;
        let values = series_codec::decode_values(&group.raw[value_range], times.len())?;
        if values.len() != times.len() {
            return Err(corrupt(&self.path, "value count"));
        }
        Ok(times.into_iter().zip(values).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_block(dir: &Path, n: usize) -> PathBuf {
        let mut writer = BlockWriter::create(dir, 0, 10_000, 1).unwrap();
        let mut all: Vec<Labels> = (0..n)
            .map(|i| Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())]))
            .collect();
        all.sort();
        for labels in &all {
            let i: i64 = labels.get("i").unwrap().parse().unwrap();
            let samples: Vec<(i64, f64)> =
                (0..100).map(|t| (t * 15, (t * i) as f64 * 0.5)).collect();
            writer.add_series(labels, &samples).unwrap();
        }
        writer.finish().unwrap().unwrap()
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_block(dir.path(), 3000);
        let block = Block::open(&path).unwrap();
        assert_eq!(block.num_series(), 3000);
        assert!(block.groups.len() > 1, "several groups");
        assert_eq!(block.meta().num_samples, 300_000);
        assert_eq!((block.meta().min_time, block.meta().max_time), (0, 1485));
        let m = crate::Matcher::new(crate::MatchOp::Equal, "i", "17").unwrap();
        let ids = block.index().select(&[m]);
        assert_eq!(ids.len(), 1);
        let id = ids.min().unwrap();
        assert_eq!(block.labels(id).get("i"), Some("17"));
        let samples = block.samples(id).unwrap();
        assert_eq!(samples.len(), 100);
        assert_eq!(samples[3], (45, 3.0 * 17.0 * 0.5));
        let bytes_per_sample = block.file_bytes() as f64 / 300_000.0;
        assert!(bytes_per_sample < 1.0, "{bytes_per_sample} bytes/sample");
    }

    #[test]
    fn corruption_is_detected_not_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_block(dir.path(), 50);
        let original = std::fs::read(&path).unwrap();
        for position in (0..original.len()).step_by(7).chain([original.len() - 1]) {
            let mut bytes = original.clone();
            bytes[position] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
            match Block::open(&path) {
                Err(Error::Corrupt(_)) => {}
                other => panic!("flip at {position}: {other:?}"),
            }
        }
        std::fs::write(&path, &original[..original.len() / 2]).unwrap();
        assert!(matches!(Block::open(&path), Err(Error::Corrupt(_))));
    }

    #[test]
    fn empty_writer_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let writer = BlockWriter::create(dir.path(), 0, 10, 1).unwrap();
        assert!(writer.finish().unwrap().is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
