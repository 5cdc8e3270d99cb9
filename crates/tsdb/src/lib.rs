//! The metrics store: series, compressed chunks, an inverted index, on-disk blocks,
//! compaction and retention.
//!
//! Ours rather than a library because it is the core of the product. It must never
//! know about HTTP, a wire protocol or a query language: callers hand it
//! [`sightline_model::WriteRequest`]s and label matchers.

pub mod chunk;

/// Errors of the metrics store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
