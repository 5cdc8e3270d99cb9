//! What happens to every record on its way in, whatever protocol brought it. For now:
//! Prometheus relabeling ([`relabel`]), used by scraping (`relabel_configs`,
//! `metric_relabel_configs`) and meant for remote_write too, and per-series label
//! limits ([`limits`]).
//!
//! This crate must never know a wire protocol, HTTP, a file format or a store: it takes
//! label sets of `sightline-model` and configuration values, and returns label sets.
//! It has no I/O and no on-disk format.

pub mod limits;
pub mod relabel;

pub use limits::LabelLimits;
pub use relabel::{RelabelAction, RelabelConfig, RelabelRegex};

/// Errors of the pipeline's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A relabel rule that Prometheus would refuse; the message is Prometheus' own.
    #[error("{0}")]
    InvalidRelabelConfig(String),
    /// A `regex` that does not compile.
    #[error("invalid regex {regex:?}: {message}")]
    InvalidRegex { regex: String, message: String },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
