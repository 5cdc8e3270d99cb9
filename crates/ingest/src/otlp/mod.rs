//! OTLP metrics → Prometheus-named series in the model.
//!
//! The translation follows Prometheus' own (`storage/remote/otlptranslator` and the
//! `prometheus/otlptranslator` library) with `translation_strategy:
//! UnderscoreEscapingWithSuffixes`, the Prometheus 3.x default:
//!
//! - metric names: invalid characters → `_`, unit suffixes (`ms` → `_milliseconds`,
//!   `By` → `_bytes`, `By/s` → `_bytes_per_second`, `{annotations}` dropped), `_total`
//!   for monotonic sums, `_ratio` for gauges with unit `1`;
//! - label names: invalid characters → `_`, leading digit → `key_` prefix, single
//!   leading `_` → `key` prefix; colliding names have their values joined with `;`;
//! - `job` = `service.namespace/service.name`, `instance` = `service.instance.id`; a
//!   `target_info` gauge (1) per resource carries the other resource attributes (only
//!   when it has some), sampled every 2.5 min between the resource's earliest and latest
//!   data point (at most 64 samples);
//! - no scope labels by default, as Prometheus; with
//!   [`TranslateOptions::promote_scope_metadata`], `otel_scope_name` and
//!   `otel_scope_version` labels when the scope has a name (scope attributes and schema
//!   URL are not promoted);
//! - Gauge → gauge; cumulative monotonic Sum → counter `_total`; cumulative
//!   non-monotonic Sum → gauge; Histogram → `_bucket{le}` (cumulative, with `+Inf`),
//!   `_sum`, `_count`; Summary → `{quantile}`, `_sum`, `_count`;
//! - **ExponentialHistogram → classic buckets** (Prometheus makes native histograms,
//!   which the model does not have yet): `le` = bucket upper bounds `base^(index+1)`
//!   with `base = 2^(2^-scale)`, negative buckets and the zero bucket included, and
//!   downscaled until at most 40 finite buckets remain (details in `exphist.rs`);
//! - delta (or unspecified) temporality Sums and histograms are dropped and counted,
//!   as Prometheus does without its delta feature flag;
//! - points flagged `NoRecordedValue` become the staleness marker NaN;
//! - exemplars (trace and span ids as hex `trace_id`/`span_id` labels) are kept on
//!   Sums and histogram buckets, as in Prometheus; gauge exemplars are not;
//! - metadata (type, help = description, unit = the Prometheus unit word, e.g.
//!   `milliseconds`) once per metric family.
//!
//! Timestamps stay in nanoseconds (Prometheus truncates to milliseconds).

mod exphist;
mod json;
mod names;
mod translate;
mod values;

use prost::Message;
use sightline_model::WriteRequest;

pub use crate::{Error, Result};
pub use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};

/// The result of translating one OTLP export request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Translation {
    /// The series, samples, exemplars and metadata to write.
    pub request: WriteRequest,
    /// OTLP data points that were not translated (for
    /// `partial_success.rejected_data_points`).
    pub dropped_data_points: u64,
    /// The first few distinct reasons for the drops (for
    /// `partial_success.error_message`); may also hold a warning that dropped no data
    /// point (e.g. a metric with no data).
    pub dropped_reasons: Vec<String>,
    /// Exemplars dropped because their trace and span ids alone make the exemplar's
    /// label text longer than 128 characters (Prometheus' `ErrExemplarLabelLength`);
    /// their data points were kept. Filtered attributes that would pass the limit are
    /// left out instead, keeping the exemplar.
    pub dropped_exemplars: u64,
}

impl Translation {
    /// The OTLP response for this translation: `partial_success` set when something
    /// was dropped or there is a warning, as the OTLP spec asks.
    pub fn response(&self) -> ExportMetricsServiceResponse {
        if self.dropped_data_points == 0 && self.dropped_reasons.is_empty() {
            return ExportMetricsServiceResponse::default();
        }
        ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: i64::try_from(self.dropped_data_points).unwrap_or(i64::MAX),
                error_message: self.dropped_reasons.join("; "),
            }),
        }
    }
}

/// Translates an OTLP metrics export request into the model. Never fails: what cannot
/// be translated is dropped and counted in [`Translation::dropped_data_points`].
pub fn translate(request: &ExportMetricsServiceRequest) -> Translation {
    translate::translate(request, &TranslateOptions::default())
}

/// Choices of the translation that Prometheus' OTLP receiver makes configurable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TranslateOptions {
    /// Add `otel_scope_name` and `otel_scope_version` labels (Prometheus'
    /// `otlp.promote_scope_metadata`; off by default, as in Prometheus).
    pub promote_scope_metadata: bool,
}

/// [`translate`] with explicit options.
pub fn translate_with_options(
    request: &ExportMetricsServiceRequest,
    options: &TranslateOptions,
) -> Translation {
    translate::translate(request, options)
}

/// Decodes an OTLP/HTTP protobuf body (`application/x-protobuf`, already
/// un-gzipped by the caller).
pub fn decode_protobuf(body: &[u8]) -> Result<ExportMetricsServiceRequest> {
    ExportMetricsServiceRequest::decode(body).map_err(|e| Error::BadProtobuf(e.to_string()))
}

/// Decodes an OTLP/HTTP JSON body (`application/json`): camelCase field names,
/// 64-bit integers as strings or numbers, enums as integers, trace and span ids as
/// hex, doubles as numbers or proto3-JSON strings (`"NaN"`, `"Infinity"`), as the
/// OTLP/JSON spec and the OpenTelemetry SDKs write them. Unknown fields are ignored.
/// A malformed metric is an error naming its path (never silently dropped).
pub fn decode_json(body: &[u8]) -> Result<ExportMetricsServiceRequest> {
    json::decode(body)
}

#[cfg(test)]
mod tests;
