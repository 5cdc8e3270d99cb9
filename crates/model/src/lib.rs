//! The canonical data model every Sightline crate speaks: label sets, samples,
//! exemplars, metric metadata, tenant ids and time.
//!
//! This crate must never know about a wire protocol, a file format, HTTP or a query
//! language: adapters translate *into* these types, stores persist them, engines read
//! them. It has no I/O at all.
//!
//! Time is nanoseconds since the Unix epoch as `i64` everywhere inside Sightline
//! ([`Timestamp`]); APIs convert at their edge with the helpers in [`time`].

mod borrowed;
pub mod id_hash;
mod labels;
mod tenant;
pub mod time;

pub use borrowed::{
    LabelRef, LabelSet, LabelsRef, SeriesRef, encode_label, fingerprint_of, fingerprint_of_encoded,
};
pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME_LABEL};
pub use tenant::TenantId;
pub use time::Timestamp;

/// Errors produced when untrusted input is turned into model types.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("label set is empty")]
    EmptyLabelSet,
    #[error("label name is empty")]
    EmptyLabelName,
    #[error("label {name:?} has an empty value")]
    EmptyLabelValue { name: String },
    #[error("label name {name:?} appears more than once")]
    DuplicateLabelName { name: String },
    #[error("label {what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("tenant id {id:?} is not valid: {reason}")]
    InvalidTenant { id: String, reason: &'static str },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One float sample of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub timestamp: Timestamp,
    pub value: f64,
}

/// An exemplar: a sample from a trace that explains a point of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub timestamp: Timestamp,
    pub value: f64,
}

/// The kind of a metric family, as Prometheus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    #[default]
    Unknown,
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
}

impl MetricType {
    /// The lowercase name Prometheus' `/api/v1/metadata` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Unknown => "unknown",
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
        }
    }

    /// Parses the lowercase name; anything unknown is [`MetricType::Unknown`].
    pub fn parse(name: &str) -> MetricType {
        match name {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            _ => MetricType::Unknown,
        }
    }
}

/// Help, type and unit of one metric family.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricMetadata {
    pub metric_family_name: String,
    pub metric_type: MetricType,
    pub help: String,
    pub unit: String,
}

/// One series with the samples and exemplars to append to it: the unit every
/// ingest adapter produces and every store consumes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub exemplars: Vec<Exemplar>,
}

/// Everything one write request carries, already translated to the model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WriteRequest {
    pub series: Vec<TimeSeries>,
    pub metadata: Vec<MetricMetadata>,
}

impl WriteRequest {
    /// Number of float samples in the request.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    /// The series as borrowed views, the form stores append.
    pub fn series_refs(&self) -> Vec<SeriesRef<'_, &Labels>> {
        self.series
            .iter()
            .map(|ts| SeriesRef {
                labels: &ts.labels,
                samples: &ts.samples,
                exemplars: &ts.exemplars,
            })
            .collect()
    }
}

/// Prometheus' staleness marker: a NaN with this exact bit pattern means "this series
/// ended here"; any other NaN is an ordinary value.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True when `value` is the staleness marker (not merely any NaN).
pub fn is_stale_nan(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}
