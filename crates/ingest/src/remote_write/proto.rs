//! Hand-written prost structs for Prometheus' `prompb` remote_write 1.0 messages
//! (`prompb/remote.proto` and `prompb/types.proto`, package `prometheus`).
//!
//! Field numbers and enum values are those of upstream. Differences, all wire
//! compatible:
//! - label names and values are `bytes` rather than `string`, so invalid UTF-8 reaches
//!   our validation (which names the series and the label) instead of failing inside
//!   prost with a generic message; metadata strings are `bytes` for the same reason;
//! - `TimeSeries.histograms` (field 4) is decoded as [`SkippedHistogram`], a message
//!   with no fields: prost skips the contents, and we only count them.

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    // Tag 2 is reserved upstream (Cortex used it for the request source).
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histograms: contents skipped, only counted.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<SkippedHistogram>,
}

/// `prometheus.Label`, with `bytes` name and value (see the module doc).
#[derive(Clone, PartialEq, Eq, ::prost::Message)]
pub struct Label {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
        Label {
            name: name.into().into_bytes(),
            value: value.into().into_bytes(),
        }
    }
}

/// `prometheus.Sample`: a float value at a millisecond timestamp.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.Histogram` with every field skipped: we count native histograms but do
/// not decode them yet.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct SkippedHistogram {}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, Eq, ::prost::Message)]
pub struct MetricMetadata {
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub metric_family_name: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub help: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    pub unit: Vec<u8>,
}

impl MetricMetadata {
    pub fn new(
        metric_type: MetricType,
        metric_family_name: impl Into<String>,
        help: impl Into<String>,
        unit: impl Into<String>,
    ) -> MetricMetadata {
        MetricMetadata {
            r#type: metric_type as i32,
            metric_family_name: metric_family_name.into().into_bytes(),
            help: help.into().into_bytes(),
            unit: unit.into().into_bytes(),
        }
    }
}

/// `prometheus.MetricMetadata.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    Unknown = 0,
    Counter = 1,
    Gauge = 2,
    Histogram = 3,
    Gaugehistogram = 4,
    Summary = 5,
    Info = 6,
    Stateset = 7,
}

impl MetricType {
    /// The model's type for this wire value.
    pub fn to_model(self) -> sightline_model::MetricType {
        use sightline_model::MetricType as M;
        match self {
            MetricType::Unknown => M::Unknown,
            MetricType::Counter => M::Counter,
            MetricType::Gauge => M::Gauge,
            MetricType::Histogram => M::Histogram,
            MetricType::Gaugehistogram => M::GaugeHistogram,
            MetricType::Summary => M::Summary,
            MetricType::Info => M::Info,
            MetricType::Stateset => M::StateSet,
        }
    }

    /// The wire value for a model type.
    pub fn from_model(metric_type: sightline_model::MetricType) -> MetricType {
        use sightline_model::MetricType as M;
        match metric_type {
            M::Unknown => MetricType::Unknown,
            M::Counter => MetricType::Counter,
            M::Gauge => MetricType::Gauge,
            M::Histogram => MetricType::Histogram,
            M::GaugeHistogram => MetricType::Gaugehistogram,
            M::Summary => MetricType::Summary,
            M::Info => MetricType::Info,
            M::StateSet => MetricType::Stateset,
        }
    }
}
