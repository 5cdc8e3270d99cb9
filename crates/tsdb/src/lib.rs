//! The metrics store: series, compressed chunks, an inverted index, on-disk blocks,
//! compaction and retention.
//!
//! Ours rather than a library because it is the core of the product. It must never
//! know about HTTP, a wire protocol or a query language: callers hand it
//! [`sightline_model::WriteRequest`]s and label matchers ([`Matcher`]).
//!
//! Layout: a mutable in-memory head ([`head`]) with per-series XOR chunks and an
//! inverted index ([`index`]) over interned label strings; every accepted write is
//! logged to a write-ahead log (`dir/wal`, records in [`wal_records`]) before it is
//! acknowledged; the head is cut into immutable, zstd-compressed block files under
//! `dir/blocks/` (format in `crates/tsdb/FORMAT.md`), which are compacted into larger
//! blocks and dropped by retention.

mod block;
pub mod cardinality;
pub mod chunk;
mod compact;
mod db;
mod encoding;
pub mod go_regex;
mod head;
mod head_chunks;
mod index;
mod inflight;
mod matcher;
mod metadata;
mod replay;
mod select;
mod series_codec;
mod symbols;
mod wal_records;

#[cfg(test)]
mod tests;

pub use block::GroupCache;
pub use db::{
    AppendReport, DEFAULT_GROUP_CACHE_BYTES, Db, DbOptions, DbStats, RejectReason, Rejection,
    SeriesSamples,
};
pub use matcher::{MatchOp, Matcher};
pub use select::{Selection, SeriesMillis};

/// Errors of the metrics store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A regex matcher whose value does not compile.
    #[error("invalid regex {regex:?} in label matcher: {message}")]
    InvalidRegex { regex: String, message: String },
    /// Stored data (a block, a chunk, a WAL record) failed a check.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A select would load more samples than its caller allows; `loaded` were
    /// decoded (and dropped) before that was known.
    #[error("select would load more than {limit} samples")]
    SampleLimit { limit: usize, loaded: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] sightline_wal::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
