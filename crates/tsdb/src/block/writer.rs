//! [`BlockWriter`]: writes one block file (format 2) series by series.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sightline_model::Labels;

use super::{
    BlockMeta, ChunkMeta, FOOTER_LEN, GroupEntry, HEADER_LEN, INDEX_ZSTD_LEVEL, MAGIC, VERSION,
};
use crate::encoding::{put_str, put_uvarint, put_varint};
use crate::series_codec;
use crate::{Error, Result};

/// A group is closed once its uncompressed streams reach this size.
const GROUP_TARGET_BYTES: usize = 256 << 10;
const ZSTD_LEVEL: i32 = 9;
/// Most samples in one chunk of a series. A series is cut into the fewest chunks of
/// at most this many samples, of equal size (±1), so no chunk is a tiny remainder.
pub(crate) const MAX_CHUNK_SAMPLES: usize = 120;

/// Writes one block file; series must be added in ascending label order.
#[derive(Debug)]
pub(crate) struct BlockWriter {
    tmp_path: PathBuf,
    final_path: PathBuf,
    file: Option<BufWriter<File>>,
    offset: u64,
    ts_buffer: Vec<u8>,
    value_buffer: Vec<u8>,
    /// Per chunk of the open group: (timestamp stream length, value stream length).
    stream_lengths: Vec<(usize, usize)>,
    groups: Vec<GroupEntry>,
    series: Vec<(Labels, Vec<ChunkMeta>)>,
    meta: BlockMeta,
}

/// Splits `len` samples into the fewest chunks of at most [`MAX_CHUNK_SAMPLES`], sizes
/// differing by at most one; yields each chunk's `(start, end)`.
pub(crate) fn chunk_bounds(len: usize) -> impl Iterator<Item = (usize, usize)> {
    let chunks = len.div_ceil(MAX_CHUNK_SAMPLES).max(1);
    (0..chunks).map(move |i| (i * len / chunks, (i + 1) * len / chunks))
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
        let final_path = dir.join(format!("{name}.{}", super::BLOCK_EXTENSION));
        let tmp_path = dir.join(format!("{name}.{}", super::TMP_EXTENSION));
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
    /// All chunks of a series go to one group (a group is only closed between series).
    pub(crate) fn add_series(&mut self, labels: &Labels, samples: &[(i64, f64)]) -> Result<()> {
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return Ok(());
        };
        debug_assert!(self.series.last().is_none_or(|(prev, _)| prev < labels));
        let mut chunks = Vec::with_capacity(samples.len().div_ceil(MAX_CHUNK_SAMPLES));
        for (start, end) in chunk_bounds(samples.len()) {
            let chunk = &samples[start..end];
            let (min_time, max_time) = (chunk[0].0, chunk[chunk.len() - 1].0);
            let ts_start = self.ts_buffer.len();
            let value_start = self.value_buffer.len();
            series_codec::encode_timestamps(chunk, min_time, &mut self.ts_buffer);
            series_codec::encode_values(chunk, &mut self.value_buffer);
            self.stream_lengths.push((
                self.ts_buffer.len() - ts_start,
                self.value_buffer.len() - value_start,
            ));
            chunks.push(ChunkMeta {
                min_time,
                max_time,
                num_samples: chunk.len() as u32,
            });
        }
        self.series.push((labels.clone(), chunks));
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
            num_chunks: self.stream_lengths.len() as u32,
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
        let raw_index = self.encode_index();
        let mut index = Vec::with_capacity(raw_index.len() / 4 + 16);
        index.extend_from_slice(&(raw_index.len() as u64).to_le_bytes());
        index.extend_from_slice(&zstd::bulk::compress(&raw_index, INDEX_ZSTD_LEVEL)?);
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
        for (labels, _) in &self.series {
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
            put_uvarint(&mut out, u64::from(group.num_chunks));
        }
        put_uvarint(&mut out, self.series.len() as u64);
        for (labels, chunks) in &self.series {
            put_uvarint(&mut out, labels.len() as u64);
            for label in labels {
                put_uvarint(&mut out, symbol_id(&label.name));
                put_uvarint(&mut out, symbol_id(&label.value));
            }
            put_uvarint(&mut out, chunks.len() as u64);
            let mut previous_max = None;
            for chunk in chunks {
                match previous_max {
                    None => put_varint(&mut out, chunk.min_time),
                    // Chunks follow each other: the gap is positive.
                    Some(max) => put_uvarint(&mut out, chunk.min_time.wrapping_sub(max) as u64),
                }
                put_uvarint(&mut out, chunk.max_time.wrapping_sub(chunk.min_time) as u64);
                put_uvarint(&mut out, u64::from(chunk.num_samples));
                previous_max = Some(chunk.max_time);
            }
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
