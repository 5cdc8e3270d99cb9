//! Head chunk files: closed in-order chunks of the head, written out of memory.
//!
//! A series' chunk is closed after [`crate::chunk::XorChunk::MAX_SAMPLES`] samples
//! or at a block boundary; from then on it is only read (by queries and the block
//! cut). Keeping every closed chunk on the heap made samples the largest part of
//! the head's memory, so, like Prometheus' memory-mapped head chunks, closed chunks
//! are appended to a scratch file and the head keeps a 32-byte reference; reads
//! come back from the page cache with `pread`.
//!
//! These files are NOT a durable format: the WAL is what makes samples durable, and
//! replay rebuilds every chunk. So the directory is emptied at open, a file holds
//! the chunks of one block window (chunks never cross a block boundary), and the
//! file of a window is deleted when the head has dropped every chunk in it. Layout in
//! `FORMAT.md` ("Head chunk files").

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{Error, Result};

/// First bytes of every head chunk file: magic and format version 1.
const FILE_HEADER: &[u8; 8] = b"SLHCHK\x00\x01";

/// Where a closed chunk's bytes are, in the file of the block window holding the
/// chunk's first sample (the head keeps that time already, so it is not repeated here:
/// every byte of this struct is kept for every closed chunk in the head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpilledChunk {
    /// Offset of the chunk's bytes in that file.
    pub(crate) offset: u64,
    /// Length of the chunk's bytes (the CRC-32C after them is not counted).
    pub(crate) len: u32,
    /// CRC-32C of the bytes, checked on every read.
    pub(crate) crc: u32,
}

/// The head chunk files of one store.
#[derive(Debug)]
pub(crate) struct HeadChunkFiles {
    dir: PathBuf,
    block_range: i64,
    windows: Mutex<BTreeMap<i64, WindowFile>>,
}

#[derive(Debug)]
struct WindowFile {
    file: Arc<File>,
    /// Bytes allocated so far (writes go to offsets handed out under the lock).
    len: u64,
    /// Chunks written and not yet released: the file is deleted when this drops to 0.
    live_chunks: u64,
}

impl HeadChunkFiles {
    /// Opens (and empties) `dir`: chunks left by an earlier run are rebuilt from the
    /// WAL, never read.
    pub(crate) fn open(dir: &Path, block_range: i64) -> Result<HeadChunkFiles> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Io(e)),
        }
        std::fs::create_dir_all(dir)?;
        Ok(HeadChunkFiles {
            dir: dir.to_path_buf(),
            block_range: block_range.max(1),
            windows: Mutex::new(BTreeMap::new()),
        })
    }

    /// Start of the block window holding `t`.
    pub(crate) fn window_of(&self, t: i64) -> i64 {
        t.div_euclid(self.block_range)
            .saturating_mul(self.block_range)
    }

    /// Appends a closed chunk whose first sample is at `min_time`.
    pub(crate) fn write(&self, min_time: i64, bytes: &[u8]) -> Result<SpilledChunk> {
        let window = self.window_of(min_time);
        let len = u32::try_from(bytes.len())
            .map_err(|_| Error::Corrupt(format!("chunk of {} bytes", bytes.len())))?;
        let crc = crc32c::crc32c(bytes);
        let (file, offset) = {
            let mut windows = self.windows.lock();
            let entry = match windows.entry(window) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    let file = OpenOptions::new()
                        .create(true)
                        .truncate(true)
                        .read(true)
                        .write(true)
                        .open(self.path_of(window))?;
                    file.write_all_at(FILE_HEADER, 0)?;
                    slot.insert(WindowFile {
                        file: Arc::new(file),
                        len: FILE_HEADER.len() as u64,
                        live_chunks: 0,
                    })
                }
            };
            let offset = entry.len;
            // Bytes then CRC: the next chunk starts after both.
            entry.len += u64::from(len) + 4;
            // Counted before the write: the file cannot be released under a writer.
            entry.live_chunks += 1;
            (Arc::clone(&entry.file), offset)
        };
        // Outside the lock: writers to distinct offsets do not wait for each other.
        let mut framed = Vec::with_capacity(bytes.len() + 4);
        framed.extend_from_slice(bytes);
        framed.extend_from_slice(&crc.to_le_bytes());
        if let Err(e) = file.write_all_at(&framed, offset) {
            self.release_window(window);
            return Err(Error::Io(e));
        }
        Ok(SpilledChunk { offset, len, crc })
    }

    /// The bytes of a chunk written by [`Self::write`] with the same `min_time`.
    pub(crate) fn read(&self, min_time: i64, chunk: &SpilledChunk) -> Result<Vec<u8>> {
        let window = self.window_of(min_time);
        let file = self
            .windows
            .lock()
            .get(&window)
            .map(|w| Arc::clone(&w.file))
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "head chunk file of window {window} is gone while a chunk refers to it"
                ))
            })?;
        let mut bytes = vec![0u8; chunk.len as usize];
        file.read_exact_at(&mut bytes, chunk.offset)?;
        if crc32c::crc32c(&bytes) != chunk.crc {
            return Err(Error::Corrupt(format!(
                "head chunk at offset {} of {} fails its checksum",
                chunk.offset,
                self.path_of(window).display()
            )));
        }
        Ok(bytes)
    }

    /// Gives up one chunk written with `min_time` (the head dropped it); the window's
    /// file is deleted with its last chunk. A later chunk of the window starts a new file.
    pub(crate) fn release(&self, min_time: i64) {
        self.release_window(self.window_of(min_time));
    }

    fn release_window(&self, window: i64) {
        let mut windows = self.windows.lock();
        let Some(entry) = windows.get_mut(&window) else {
            return;
        };
        entry.live_chunks = entry.live_chunks.saturating_sub(1);
        if entry.live_chunks > 0 {
            return;
        }
        windows.remove(&window);
        drop(windows);
        if let Err(e) = std::fs::remove_file(self.path_of(window)) {
            tracing::warn!(
                file = %self.path_of(window).display(),
                error = %e,
                "head chunk file not deleted"
            );
        }
    }

    fn path_of(&self, window: i64) -> PathBuf {
        self.dir.join(format!("{window}.chunks"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn chunks_round_trip_and_windows_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head_chunks");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("stale.chunks"), b"left by a crash").unwrap();
        let files = HeadChunkFiles::open(&path, 2 * HOUR).unwrap();
        assert!(!path.join("stale.chunks").exists(), "emptied at open");

        let a = files.write(10, b"first chunk").unwrap();
        let b = files.write(20, b"second").unwrap();
        let c = files.write(2 * HOUR + 5, b"next window").unwrap();
        assert_eq!(files.read(10, &a).unwrap(), b"first chunk");
        assert_eq!(files.read(20, &b).unwrap(), b"second");
        assert_eq!(files.read(2 * HOUR + 5, &c).unwrap(), b"next window");
        assert!(path.join("0.chunks").exists());
        assert!(path.join(format!("{}.chunks", 2 * HOUR)).exists());

        files.release(10);
        assert_eq!(
            files.read(20, &b).unwrap(),
            b"second",
            "one chunk of window 0 is left"
        );
        files.release(20);
        assert!(files.read(10, &a).is_err());
        assert_eq!(files.read(2 * HOUR + 5, &c).unwrap(), b"next window");
        assert!(!path.join("0.chunks").exists());
        assert!(path.join(format!("{}.chunks", 2 * HOUR)).exists());
        let again = files.write(30, b"window 0 again").unwrap();
        assert_eq!(files.read(30, &again).unwrap(), b"window 0 again");
    }

    #[test]
    fn a_flipped_bit_is_reported_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let files = HeadChunkFiles::open(dir.path(), 2 * HOUR).unwrap();
        let chunk = files.write(1, b"some chunk bytes").unwrap();
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join("0.chunks"))
            .unwrap();
        file.write_all_at(b"X", chunk.offset + 3).unwrap();
        assert!(matches!(files.read(1, &chunk), Err(Error::Corrupt(_))));
    }

    #[test]
    fn negative_times_fall_in_the_window_below() {
        let dir = tempfile::tempdir().unwrap();
        let files = HeadChunkFiles::open(dir.path(), 2 * HOUR).unwrap();
        assert_eq!(files.window_of(-1), -2 * HOUR);
        assert_eq!(files.window_of(0), 0);
    }
}
