//! Protocol adapters: each module turns one wire format into the canonical model of
//! `sightline-model` ([`sightline_model::WriteRequest`] and friends) and does nothing
//! else.
//!
//! This crate must never know about storage, files, HTTP frameworks, gRPC servers or
//! tenants: it takes request bodies (or already-decoded protocol messages) and returns
//! model values, counts of what it had to drop, and typed errors whose messages name
//! what was wrong. The server maps [`Error`] to status codes; the pipeline applies
//! tenant limits and relabeling afterwards.
//!
//! - [`remote_write`]: Prometheus remote_write 1.0 (snappy raw block + protobuf), with
//!   hand-written prost structs (no `protoc` needed) and client-side encoding helpers.
//!   Native histograms are not decoded: they are counted in
//!   [`remote_write::Decoded::native_histograms_dropped`] so the server can tell the
//!   client.
//! - [`otlp`]: OTLP metrics (protobuf or JSON) translated to Prometheus-named series with
//!   the rules of Prometheus' own OTLP translator in its default
//!   `UnderscoreEscapingWithSuffixes` mode (unit and `_total` suffixes, `job`/`instance`
//!   from `service.*`, `target_info`; `otel_scope_*` labels only on request). Delta temporality is
//!   dropped and counted, as Prometheus does. Exponential histograms are *converted* to
//!   classic `_bucket`/`_sum`/`_count` series (see [`otlp`] for how), because the model
//!   has no native histograms yet. OTLP/JSON is read with opentelemetry-proto's serde
//!   support plus two fixes (string doubles such as `"NaN"`, and errors inside a
//!   metric's data that it would otherwise swallow silently).
//! - [`exposition`]: the Prometheus text format (0.0.4) and OpenMetrics 1.0 text that
//!   scrape targets serve, with exemplars and metadata.
//!
//! No on-disk format lives here.

pub mod exposition;
pub mod otlp;
pub mod remote_write;

/// The media type of a `Content-Type` value, lowercased and without parameters:
/// `Application/JSON; charset=utf-8` → `application/json`.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Errors of the protocol adapters. Every variant is the client's fault: the server
/// maps [`Error::TooLarge`] to 413 and everything else to 400 (gRPC: `InvalidArgument`,
/// `ResourceExhausted` for too large).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The body is not a valid snappy raw block.
    #[error("snappy decompression failed: {0}")]
    BadSnappy(String),
    /// The body would decompress past the configured limit.
    #[error(
        "decompressed body would be {decompressed} bytes; limit is {limit} (max_decompressed_bytes)"
    )]
    TooLarge { decompressed: usize, limit: usize },
    /// The (decompressed) body is not a valid protobuf message of the expected type.
    #[error("protobuf decoding failed: {0}")]
    BadProtobuf(String),
    /// One series of a remote_write request is not acceptable. `reason` starts with the
    /// series' labels in parentheses (truncated) and says what is wrong, e.g.
    /// `({__name__="x", job="a"}): label name "" is empty`.
    #[error("series {index} {reason}")]
    InvalidSeries { index: usize, reason: String },
    /// The body is not valid OTLP/JSON.
    #[error("OTLP JSON decoding failed: {0}")]
    BadJson(String),
    /// A scraped body is not valid Prometheus text / OpenMetrics.
    #[error("line {line}: {message}")]
    Exposition { line: usize, message: String },
}

impl Error {
    /// True when the request was refused for its size (HTTP 413), not its content.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Error::TooLarge { .. })
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
