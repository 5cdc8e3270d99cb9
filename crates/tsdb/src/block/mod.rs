//! Immutable block files: every sample of a time range, cut per series into chunks of
//! at most a few hundred samples, zstd-compressed in groups of series, plus an index
//! of label sets and per-chunk time ranges (so a query decodes only the chunks its
//! window overlaps). Written to a temporary name, fsynced and renamed into place;
//! checked (lengths and CRC-32C of every section) when opened. The format is described
//! in `crates/tsdb/FORMAT.md`; format 1 blocks (one chunk per series, plain index) are
//! still read.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sightline_model::{Label, Labels};

use crate::encoding::Reader;
use crate::index::LabelIndex;
use crate::series_codec::ChunkDecoder;
use crate::{Error, Result};

mod cache;
mod writer;

pub use cache::GroupCache;

pub(crate) use writer::BlockWriter;

/// "SLTB" little-endian: the first and last four bytes of every block file.
pub(crate) const MAGIC: u32 = u32::from_le_bytes(*b"SLTB");
/// Written by this version; [`VERSION_1`] is still read.
pub(crate) const VERSION: u32 = 2;
const VERSION_1: u32 = 1;
const HEADER_LEN: u64 = 8;
const FOOTER_LEN: u64 = 32;
/// Refuse groups claiming more than this uncompressed (a corrupt length).
const MAX_GROUP_RAW_BYTES: usize = 512 << 20;
/// Refuse indexes claiming more than this uncompressed (a corrupt length).
const MAX_INDEX_RAW_BYTES: u64 = 1 << 30;
const INDEX_ZSTD_LEVEL: i32 = 9;
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
    /// Chunk slots in the group (series in format 1, where a series is one chunk).
    num_chunks: u32,
}

/// One chunk of a series: its samples' time range (inclusive) and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    pub(crate) min_time: i64,
    pub(crate) max_time: i64,
    pub(crate) num_samples: u32,
}

impl ChunkMeta {
    fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.max_time >= mint && self.min_time <= maxt
    }
}

#[derive(Debug)]
struct BlockSeries {
    labels: Box<[u32]>,
    group: u32,
    /// Slot of the series' first chunk in its group; its chunks take the next slots.
    first_slot: u32,
    /// Position of its first chunk in `Block::chunks`.
    first_chunk: u32,
    num_chunks: u32,
}

#[derive(Debug)]
struct DecodedGroup {
    raw: Vec<u8>,
    /// Per chunk slot: (timestamp stream range, value stream range) in `raw`.
    streams: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
}

impl DecodedGroup {
    /// Heap memory it holds.
    fn heap_bytes(&self) -> usize {
        self.raw.capacity()
            + self.streams.capacity()
                * std::mem::size_of::<(std::ops::Range<usize>, std::ops::Range<usize>)>()
    }
}

/// An open block: its index in memory, its sample groups read on demand.
#[derive(Debug)]
pub(crate) struct Block {
    path: PathBuf,
    file: File,
    file_bytes: u64,
    version: u32,
    meta: BlockMeta,
    symbols: Vec<Arc<str>>,
    series: Vec<BlockSeries>,
    chunks: Vec<ChunkMeta>,
    groups: Vec<GroupEntry>,
    index: LabelIndex,
    /// The group decoded last by any reader: the next query of the same series (a
    /// dashboard refreshing) finds it without decompressing.
    shared_last_group: Mutex<Option<(u32, Arc<DecodedGroup>)>>,
    /// This block in `cache`.
    uid: cache::BlockUid,
    /// Where queries keep the groups they decompress (see [`GroupCache`]).
    cache: Option<Arc<GroupCache>>,
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(cache) = &self.cache {
            cache.remove_block(self.uid);
        }
    }
}

/// The sample group one reader of one block decoded last: reading the block's series
/// in order then decompresses each group once. Each reader (a decoding thread, a
/// compaction input) has its own, so readers of one block never evict each other's
/// group (with only the block's shared one, two decoding threads decompressed a group
/// per series). Use one per block: it does not tell blocks apart.
#[derive(Debug, Default)]
pub(crate) struct LastGroup {
    group: Option<(u32, Arc<DecodedGroup>)>,
    /// A query's reader: it looks in the block's [`GroupCache`] and fills it.
    cached: bool,
}

impl LastGroup {
    /// The reader of a query (see [`LastGroup::cached`]).
    pub(crate) fn for_query() -> LastGroup {
        LastGroup {
            group: None,
            cached: true,
        }
    }
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
        if version != VERSION && version != VERSION_1 {
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
            || footer_version != version
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
        if version != VERSION_1 {
            index_bytes = decompress_index(path, &index_bytes)?;
        }
        let mut block = Block::parse_index(path, file, file_bytes, version, &index_bytes)?;
        if block
            .groups
            .last()
            .map_or(HEADER_LEN, |g| g.offset + g.compressed_len)
            != index_offset
        {
            return Err(corrupt(path, "groups do not fill the data section"));
        }
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
        version: u32,
        bytes: &[u8],
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
                num_chunks: u32::try_from(reader.uvarint()?)
                    .map_err(|_| corrupt(path, "group chunk count"))?,
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
        let series_count = reader.len(reader.remaining())?;
        let mut series = Vec::with_capacity(series_count);
        let mut chunks: Vec<ChunkMeta> = Vec::with_capacity(series_count);
        let (mut group_index, mut slot) = (0usize, 0u32);
        let mut total_samples = 0u64;
        for _ in 0..series_count {
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
            let first_chunk = chunks.len() as u32;
            let num_chunks = if version == VERSION_1 {
                let min_time = reader.varint()?;
                let max_time = reader.varint()?;
                let num_samples =
                    u32::try_from(reader.uvarint()?).map_err(|_| corrupt(path, "sample count"))?;
                chunks.push(ChunkMeta {
                    min_time,
                    max_time,
                    num_samples,
                });
                1
            } else {
                parse_chunk_table(path, &mut reader, &mut chunks)?
            };
            let series_chunks = &chunks[first_chunk as usize..];
            total_samples += series_chunks
                .iter()
                .map(|c| u64::from(c.num_samples))
                .sum::<u64>();
            if series_chunks.iter().any(|c| c.min_time > c.max_time) {
                return Err(corrupt(path, "chunk time range"));
            }
            // A series' chunks take consecutive slots of one group.
            while groups
                .get(group_index)
                .is_some_and(|g| slot >= g.num_chunks)
            {
                group_index += 1;
                slot = 0;
            }
            let fits = groups.get(group_index).is_some_and(|g| {
                slot.checked_add(num_chunks)
                    .is_some_and(|end| end <= g.num_chunks)
            });
            if !fits {
                return Err(corrupt(path, "series chunks do not fit their group"));
            }
            series.push(BlockSeries {
                labels: labels.into_boxed_slice(),
                group: group_index as u32,
                first_slot: slot,
                first_chunk,
                num_chunks,
            });
            slot += num_chunks;
        }
        if !reader.is_empty() {
            return Err(corrupt(path, "trailing bytes in index"));
        }
        if version != VERSION_1 && total_samples != num_samples {
            return Err(corrupt(path, "sample count"));
        }
        Ok(Block {
            path: path.to_path_buf(),
            file,
            file_bytes,
            version,
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
            chunks,
            groups,
            index: LabelIndex::default(),
            shared_last_group: Mutex::new(None),
            uid: cache::next_block_uid(),
            cache: None,
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

    /// Keeps the groups queries decompress in `cache`.
    pub(crate) fn with_cache(mut self, cache: Arc<GroupCache>) -> Block {
        self.cache = Some(cache);
        self
    }

    fn group(&self, group_index: u32, last: &mut LastGroup) -> Result<Arc<DecodedGroup>> {
        if let Some((cached, group)) = &last.group
            && *cached == group_index
        {
            return Ok(Arc::clone(group));
        }
        if let Some((cached, group)) = &*self.shared_last_group.lock()
            && *cached == group_index
        {
            last.group = Some((group_index, Arc::clone(group)));
            return Ok(Arc::clone(group));
        }
        let cache = self.cache.as_ref().filter(|_| last.cached);
        if let Some(group) = cache.and_then(|cache| cache.get(self.uid, group_index)) {
            last.group = Some((group_index, Arc::clone(&group)));
            return Ok(group);
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
        if count != entry.num_chunks as usize {
            return Err(corrupt(&self.path, "group chunk count"));
        }
        let mut lengths = Vec::with_capacity(count);
        for _ in 0..count {
            lengths.push((reader.len(raw.len())?, reader.len(raw.len())?));
        }
        let mut position = raw.len() - reader.remaining();
        let mut streams = Vec::with_capacity(count);
        for &(ts_len, _) in &lengths {
            let end = position.saturating_add(ts_len);
            streams.push((position..end, 0..0));
            position = end;
        }
        for (slot, &(_, value_len)) in lengths.iter().enumerate() {
            let end = position.saturating_add(value_len);
            streams[slot].1 = position..end;
            position = end;
        }
        if position != raw.len() {
            return Err(corrupt(&self.path, "group stream lengths"));
        }
        let decoded = Arc::new(DecodedGroup { raw, streams });
        if let Some(cache) = cache {
            cache.insert(self.uid, group_index, &decoded);
        }
        last.group = Some((group_index, Arc::clone(&decoded)));
        *self.shared_last_group.lock() = Some((group_index, Arc::clone(&decoded)));
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

    /// The chunks of series `id`, oldest first (empty for an unknown id).
    pub(crate) fn chunks(&self, id: u32) -> &[ChunkMeta] {
        let Some(series) = self.series.get(id as usize) else {
            return &[];
        };
        let start = series.first_chunk as usize;
        self.chunks
            .get(start..start + series.num_chunks as usize)
            .unwrap_or(&[])
    }

    /// Whether series `id` has a chunk overlapping `[mint, maxt]`.
    pub(crate) fn has_chunks_in(&self, id: u32, mint: i64, maxt: i64) -> bool {
        self.chunks(id).iter().any(|c| c.overlaps(mint, maxt))
    }

    /// Samples of series `id` in chunks lying entirely in `[mint, maxt]`: a lower
    /// bound of what [`Block::samples_in`] returns, known without decoding.
    pub(crate) fn samples_surely_in(&self, id: u32, mint: i64, maxt: i64) -> u64 {
        self.chunks(id)
            .iter()
            .filter(|c| c.min_time >= mint && c.max_time <= maxt)
            .map(|c| u64::from(c.num_samples))
            .sum()
    }

    /// The label pairs of series `id`, in order, borrowed from the block's symbols.
    pub(crate) fn label_pairs(&self, id: u32) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.series
            .get(id as usize)
            .map_or(&[][..], |s| &s.labels[..])
            .chunks_exact(2)
            .map(|pair| {
                (
                    &*self.symbols[pair[0] as usize],
                    &*self.symbols[pair[1] as usize],
                )
            })
    }

    pub(crate) fn labels(&self, id: u32) -> Labels {
        let labels = self
            .label_pairs(id)
            .map(|(name, value)| Label::new(name, value))
            .collect();
        Labels::from_sorted_unchecked(labels)
    }

    /// Appends the samples of series `id` in `[mint, maxt]` to `out`, decoding only
    /// the chunks that overlap the window; `last` is this reader's [`LastGroup`] of
    /// this block.
    pub(crate) fn samples_in(
        &self,
        id: u32,
        (mint, maxt): (i64, i64),
        decoder: &mut ChunkDecoder,
        last: &mut LastGroup,
        out: &mut Vec<(i64, f64)>,
    ) -> Result<()> {
        let series = self
            .series
            .get(id as usize)
            .ok_or_else(|| corrupt(&self.path, "series id"))?;
        let chunks = self.chunks(id);
        if !chunks.iter().any(|c| c.overlaps(mint, maxt)) {
            return Ok(());
        }
        let group = self.group(series.group, last)?;
        for (i, chunk) in chunks.iter().enumerate() {
            if !chunk.overlaps(mint, maxt) {
                continue;
            }
            let slot = series.first_slot as usize + i;
            let (ts_range, value_range) = group
                .streams
                .get(slot)
                .cloned()
                .ok_or_else(|| corrupt(&self.path, "chunk slot"))?;
            // Format 1 streams hold absolute timestamps; format 2 ones are relative
            // to their chunk's min_time.
            let base = if self.version == VERSION_1 {
                0
            } else {
                chunk.min_time
            };
            decoder
                .decode_into(
                    &group.raw[ts_range],
                    &group.raw[value_range],
                    base,
                    chunk.num_samples as usize,
                    (mint, maxt),
                    out,
                )
                .map_err(|e| corrupt(&self.path, e))?;
        }
        Ok(())
    }

    /// All samples of series `id` (`last`: as for [`Self::samples_in`]).
    pub(crate) fn samples(&self, id: u32, last: &mut LastGroup) -> Result<Vec<(i64, f64)>> {
        let capacity: usize = self.chunks(id).iter().map(|c| c.num_samples as usize).sum();
        let mut out = Vec::with_capacity(capacity);
        self.samples_in(
            id,
            (i64::MIN, i64::MAX),
            &mut ChunkDecoder::default(),
            last,
            &mut out,
        )?;
        Ok(out)
    }
}

/// A format 2 index: `raw_len u64` then one zstd frame of `raw_len` bytes.
fn decompress_index(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut reader = Reader::new(bytes, "block index");
    let raw_len = reader.u64_le()?;
    if raw_len > MAX_INDEX_RAW_BYTES {
        return Err(corrupt(path, "index length"));
    }
    let frame = reader.bytes(reader.remaining())?;
    let raw = zstd::bulk::decompress(frame, raw_len as usize)
        .map_err(|e| corrupt(path, format!("index decompression: {e}")))?;
    if raw.len() as u64 != raw_len {
        return Err(corrupt(path, "index length"));
    }
    Ok(raw)
}

/// Reads one series' chunk table (format 2) onto `chunks`; returns its chunk count.
fn parse_chunk_table(
    path: &Path,
    reader: &mut Reader<'_>,
    chunks: &mut Vec<ChunkMeta>,
) -> Result<u32> {
    let count = reader.len(reader.remaining())?;
    if count == 0 {
        return Err(corrupt(path, "series without chunks"));
    }
    let mut previous_max: Option<i64> = None;
    for _ in 0..count {
        let min_time = match previous_max {
            None => reader.varint()?,
            Some(max) => {
                let gap = reader.uvarint()?;
                if gap == 0 {
                    return Err(corrupt(path, "chunks overlap"));
                }
                i64::try_from(gap)
                    .ok()
                    .and_then(|gap| max.checked_add(gap))
                    .ok_or_else(|| corrupt(path, "chunk time range"))?
            }
        };
        let max_time = i64::try_from(reader.uvarint()?)
            .ok()
            .and_then(|span| min_time.checked_add(span))
            .ok_or_else(|| corrupt(path, "chunk time range"))?;
        let num_samples = u32::try_from(reader.uvarint()?)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| corrupt(path, "chunk sample count"))?;
        chunks.push(ChunkMeta {
            min_time,
            max_time,
            num_samples,
        });
        previous_max = Some(max_time);
    }
    u32::try_from(count).map_err(|_| corrupt(path, "chunk count"))
}

#[cfg(test)]
mod tests;
