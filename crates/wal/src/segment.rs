//! Segment files: their names, their header, the framing of records, and a reader that
//! never trusts the bytes it reads. The layout is described in `FORMAT.md`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result, SegmentId};

/// First eight bytes of every segment file.
pub(crate) const MAGIC: [u8; 8] = *b"SIGHTWAL";
/// Version of the segment format written by this code.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Length of the segment header: magic, version, segment id, header checksum.
pub(crate) const HEADER_LEN: u64 = 24;
/// Length of the frame before each record's payload: length and checksum.
pub(crate) const FRAME_HEADER_LEN: u64 = 8;
/// Largest payload one record may carry (its length is stored in a `u32`).
pub(crate) const MAX_RECORD_LEN: usize = u32::MAX as usize;

const SEGMENT_SUFFIX: &str = ".wal";
const SEGMENT_ID_DIGITS: usize = 20;
const READ_BUFFER_BYTES: usize = 1 << 20;

/// File name of segment `id`, e.g. `00000000000000000042.wal`.
pub(crate) fn segment_file_name(id: SegmentId) -> String {
    format!("{id:020}{SEGMENT_SUFFIX}")
}

pub(crate) fn segment_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(segment_file_name(id))
}

/// The segment id of a file name, or `None` when the name is not a segment's.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<SegmentId> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Ids of the segment files in `dir`, ascending. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<SegmentId>> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        match name.to_str().and_then(parse_segment_file_name) {
            Some(id) => ids.push(id),
            None => tracing::debug!(file = ?name, "ignoring non-segment file in wal directory"),
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Makes the directory's entries (created, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| io_error(dir, e))?;
    handle.sync_all().map_err(|e| io_error(dir, e))
}

pub(crate) fn encode_header(id: SegmentId) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&id.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..20]);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
    header
}

/// What a segment header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderStatus {
    Valid,
    /// Not a header we wrote, torn, or damaged.
    Corrupt(&'static str),
    /// A sound header of a format version this code does not know.
    UnsupportedVersion(u32),
}

pub(crate) fn check_header(header: &[u8; HEADER_LEN as usize], id: SegmentId) -> HeaderStatus {
    if header[0..8] != MAGIC {
        return HeaderStatus::Corrupt("bad magic number");
    }
    let stored_crc = u32::from_le_bytes([header[20], header[21], header[22], header[23]]);
    if crc32c::crc32c(&header[0..20]) != stored_crc {
        return HeaderStatus::Corrupt("header checksum mismatch");
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return HeaderStatus::UnsupportedVersion(version);
    }
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(&header[12..20]);
    if u64::from_le_bytes(id_bytes) != id {
        return HeaderStatus::Corrupt("segment id in header does not match file name");
    }
    HeaderStatus::Valid
}

/// Checksum of a record: CRC-32C over its little-endian length, then its payload.
pub(crate) fn record_crc(len_le: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len_le), payload)
}

/// Replaces `frame` with the framed `record`. The caller checked that
/// `record.len() <= MAX_RECORD_LEN`; a longer record would get a wrong length field
/// and so fail its checksum on read, never be misread.
pub(crate) fn encode_frame(frame: &mut Vec<u8>, record: &[u8]) {
    let len_le = u32::try_from(record.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    frame.clear();
    frame.reserve(FRAME_HEADER_LEN as usize + record.len());
    frame.extend_from_slice(&len_le);
    frame.extend_from_slice(&record_crc(len_le, record).to_le_bytes());
    frame.extend_from_slice(record);
}

/// Length on disk of a record with a payload of `payload_len` bytes.
#[cfg(test)]
pub(crate) fn framed_len(payload_len: usize) -> u64 {
    FRAME_HEADER_LEN + payload_len as u64
}

/// Creates segment `id` (which must not exist) with its header, and makes its directory
/// entry durable. Returns the file opened for appending.
pub(crate) fn create_segment(dir: &Path, id: SegmentId) -> Result<File> {
    let path = segment_path(dir, id);
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    let written = (&file)
        .write_all(&encode_header(id))
        .map_err(|e| io_error(&path, e))
        .and_then(|()| sync_dir(dir));
    if let Err(error) = written {
        // Best effort, so that a later attempt can create it again; a file left
        // behind is removed or kept whole by the next repair.
        let _ = std::fs::remove_file(&path);
        return Err(error);
    }
    Ok(file)
}

/// Where and why a segment stops being readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corruption {
    /// Offset of the first byte that is not part of a good record (the end of the last
    /// good record, or 0 when the header is bad).
    pub(crate) offset: u64,
    pub(crate) reason: &'static str,
}

/// One step of reading a segment.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    Record(&'a [u8]),
    End,
    Corrupt(Corruption),
}

/// Reads the records of one segment, checking every length against the bytes that
/// are really there before allocating, and every checksum.
#[derive(Debug)]
pub(crate) struct SegmentReader {
    path: PathBuf,
    id: SegmentId,
    reader: BufReader<File>,
    file_len: u64,
    /// Bytes of the file this reader may look at.
    limit: u64,
    /// End of the last good record (or of the header).
    offset: u64,
    payload: Vec<u8>,
}

impl SegmentReader {
    /// Opens segment `id`, reading at most `limit` bytes of it (all when `None`).
    pub(crate) fn open(dir: &Path, id: SegmentId, limit: Option<u64>) -> io::Result<SegmentReader> {
        let path = segment_path(dir, id);
        let file = File::open(&path)?;
        let file_len = file.metadata()?.len();
        Ok(SegmentReader {
            path,
            id,
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, file),
            file_len,
            limit: limit.map_or(file_len, |limit| limit.min(file_len)),
            offset: 0,
            payload: Vec::new(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Reads and checks the header; must be called once, before [`SegmentReader::next`].
    pub(crate) fn read_header(&mut self) -> Result<HeaderStatus> {
        if self.limit < HEADER_LEN {
            return Ok(HeaderStatus::Corrupt("torn segment header"));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        if !self.read_exact_or_eof(&mut header)? {
            return Ok(HeaderStatus::Corrupt("torn segment header"));
        }
        let status = check_header(&header, self.id);
        if status == HeaderStatus::Valid {
            self.offset = HEADER_LEN;
        }
        Ok(status)
    }

    /// The next record, the end of the segment, or where it is torn or corrupt.
    /// After `Corrupt` or `End`, keeps returning the same answer's kind; do not call on.
    pub(crate) fn next(&mut self) -> Result<Step<'_>> {
        let remaining = self.limit.saturating_sub(self.offset);
        if remaining == 0 {
            return Ok(Step::End);
        }
        if remaining < FRAME_HEADER_LEN {
            return Ok(self.corrupt("torn record header"));
        }
        let mut frame_header = [0u8; FRAME_HEADER_LEN as usize];
        if !self.read_exact_or_eof(&mut frame_header)? {
            return Ok(self.corrupt("torn record header"));
        }
        let len_le = [
            frame_header[0],
            frame_header[1],
            frame_header[2],
            frame_header[3],
        ];
        let stored_crc = u32::from_le_bytes([
            frame_header[4],
            frame_header[5],
            frame_header[6],
            frame_header[7],
        ]);
        let len = u64::from(u32::from_le_bytes(len_le));
        if len > remaining - FRAME_HEADER_LEN {
            return Ok(self.corrupt("torn record (length runs past the end of the segment)"));
        }
        // `len` is at most the file's length here, so this allocation is bounded by
        // bytes that really exist.
        let Ok(len_usize) = usize::try_from(len) else {
            return Ok(self.corrupt("record length does not fit in memory"));
        };
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        payload.resize(len_usize, 0);
        let complete = self.read_exact_or_eof(&mut payload)?;
        self.payload = payload;
        if !complete {
            return Ok(self.corrupt("torn record (file shorter than expected)"));
        }
        if record_crc(len_le, &self.payload) != stored_crc {
            return Ok(self.corrupt("record checksum mismatch"));
        }
        self.offset += FRAME_HEADER_LEN + len;
        Ok(Step::Record(&self.payload))
    }

    fn corrupt(&self, reason: &'static str) -> Step<'static> {
        Step::Corrupt(Corruption {
            offset: self.offset,
            reason,
        })
    }

    /// `Ok(false)` when the file ended first (it shrank while being read).
    fn read_exact_or_eof(&mut self, buf: &mut [u8]) -> Result<bool> {
        match self.reader.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(io_error(&self.path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_file_name(42), "00000000000000000042.wal");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.wal"),
            Some(42)
        );
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("42.wal"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004a.wal"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.tmp"), None);
        assert_eq!(parse_segment_file_name("99999999999999999999.wal"), None);
    }

    #[test]
    fn header_checks() {
        let header = encode_header(7);
        assert_eq!(check_header(&header, 7), HeaderStatus::Valid);
        assert!(matches!(check_header(&header, 8), HeaderStatus::Corrupt(_)));
        let mut bad_magic = header;
        bad_magic[0] ^= 1;
        assert!(matches!(
            check_header(&bad_magic, 7),
            HeaderStatus::Corrupt(_)
        ));
        let mut flipped_version = header;
        flipped_version[8] ^= 4;
        assert!(matches!(
            check_header(&flipped_version, 7),
            HeaderStatus::Corrupt(_)
        ));
        // A future version with a sound checksum is not "corrupt": it must not be cut.
        let mut future = header;
        future[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32c::crc32c(&future[0..20]);
        future[20..24].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            check_header(&future, 7),
            HeaderStatus::UnsupportedVersion(2)
        );
    }

    #[test]
    fn frame_layout() {
        let mut frame = Vec::new();
        encode_frame(&mut frame, b"abc");
        assert_eq!(frame.len() as u64, framed_len(3));
        assert_eq!(&frame[0..4], &3u32.to_le_bytes());
        assert_eq!(&frame[8..], b"abc");
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        assert_eq!(crc, record_crc(3u32.to_le_bytes(), b"abc"));
    }
}
