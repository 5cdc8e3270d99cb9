//! Zero-copy decoding of a remote_write 1.0 `WriteRequest`.
//!
//! The generic prost path allocated a `Vec<u8>` for every label name and value, then a
//! `String` again for the model: about half of the ingest CPU went to malloc and free.
//! Here the protobuf is walked by hand (the schema is four small messages) and label
//! text stays in the decompressed buffer as `&str`; a request costs a handful of
//! allocations whatever its size. Exemplars and metadata are rare and go through the
//! prost structs of [`super::proto`].

use std::ops::Range;

use prost::Message;
use sightline_model::{
    Exemplar, LabelRef, LabelsRef, MetricMetadata, Sample, SeriesRef, TimeSeries, WriteRequest,
    time,
};

use super::wire::{WireError, WireReader, WireValue};
use super::{DecodeLimits, check_label, convert_exemplar, convert_metadata, describe_raw_labels};
use super::{Error, Result, proto, quote_truncated};

/// A decoded, validated request whose label text borrows the decompressed body.
#[derive(Debug, Default)]
pub struct RequestView<'a> {
    labels: Vec<LabelRef<'a>>,
    samples: Vec<Sample>,
    exemplars: Vec<Exemplar>,
    spans: Vec<SeriesSpan>,
    /// Metric metadata, converted (lossy UTF-8, as before).
    pub metadata: Vec<MetricMetadata>,
    /// Native histogram samples present but not ingested (not supported yet).
    pub native_histograms_dropped: u64,
    /// Exemplars dropped as invalid (see [`super::Decoded::exemplars_dropped`]).
    pub exemplars_dropped: u64,
    /// Why the first dropped exemplar was dropped, naming its series, for logs.
    pub exemplar_drop_reason: Option<String>,
}

/// Where one series' labels, samples and exemplars sit in the view's flat vectors.
#[derive(Debug, Clone)]
struct SeriesSpan {
    labels: Range<usize>,
    samples: Range<usize>,
    exemplars: Range<usize>,
}

impl<'a> RequestView<'a> {
    /// The series, ready for `Db::append_series`.
    pub fn series(&self) -> Vec<SeriesRef<'_, LabelsRef<'_>>> {
        self.spans
            .iter()
            .map(|span| SeriesRef {
                labels: LabelsRef::from_sorted_unchecked(&self.labels[span.labels.clone()]),
                samples: &self.samples[span.samples.clone()],
                exemplars: &self.exemplars[span.exemplars.clone()],
            })
            .collect()
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.spans.len()
    }

    /// Number of float samples.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// An owned model request with the same content.
    pub fn to_write_request(&self) -> WriteRequest {
        use sightline_model::LabelSet;
        WriteRequest {
            series: self
                .series()
                .into_iter()
                .map(|series| TimeSeries {
                    labels: series.labels.to_labels(),
                    samples: series.samples.to_vec(),
                    exemplars: series.exemplars.to_vec(),
                })
                .collect(),
            metadata: self.metadata.clone(),
        }
    }
}

/// One label as it arrived: raw bytes, not yet checked.
pub(super) type RawLabel<'a> = (&'a [u8], &'a [u8]);

/// Decodes an already-decompressed `WriteRequest` without copying label text.
/// Errors as [`super::decode`]: [`Error::BadProtobuf`] or the first
/// [`Error::InvalidSeries`] (the whole request is refused).
pub fn decode_view<'a>(protobuf: &'a [u8], limits: &DecodeLimits) -> Result<RequestView<'a>> {
    let mut view = RequestView::default();
    let mut raw_labels: Vec<RawLabel<'a>> = Vec::new();
    let mut reader = WireReader::new(protobuf);
    while let Some((field, value)) = reader.next_field().map_err(bad_protobuf("WriteRequest"))? {
        match (field, value) {
            (1, WireValue::Bytes(series)) => {
                let index = view.spans.len();
                decode_series(index, series, limits, &mut raw_labels, &mut view)?;
            }
            (3, WireValue::Bytes(metadata)) => {
                let metadata = proto::MetricMetadata::decode(metadata)
                    .map_err(|e| Error::BadProtobuf(e.to_string()))?;
                view.metadata.push(convert_metadata(metadata));
            }
            (1 | 3, _) => return Err(wrong_wire_type("WriteRequest", field)),
            _ => {}
        }
    }
    Ok(view)
}

fn decode_series<'a>(
    index: usize,
    series: &'a [u8],
    limits: &DecodeLimits,
    raw_labels: &mut Vec<RawLabel<'a>>,
    view: &mut RequestView<'a>,
) -> Result<()> {
    raw_labels.clear();
    let samples_start = view.samples.len();
    let exemplars_start = view.exemplars.len();
    let mut exemplar_messages: Vec<&'a [u8]> = Vec::new();
    let mut reader = WireReader::new(series);
    while let Some((field, value)) = reader.next_field().map_err(bad_protobuf("TimeSeries"))? {
        match (field, value) {
            (1, WireValue::Bytes(label)) => raw_labels.push(decode_label(label)?),
            (2, WireValue::Bytes(sample)) => view.samples.push(decode_sample(sample)?),
            (3, WireValue::Bytes(exemplar)) => exemplar_messages.push(exemplar),
            (4, WireValue::Bytes(_)) => view.native_histograms_dropped += 1,
            (1..=4, _) => return Err(wrong_wire_type("TimeSeries", field)),
            _ => {}
        }
    }
    let labels = validate_labels(index, raw_labels, limits, view)?;
    for (exemplar_index, message) in exemplar_messages.into_iter().enumerate() {
        let exemplar =
            proto::Exemplar::decode(message).map_err(|e| Error::BadProtobuf(e.to_string()))?;
        match convert_exemplar(&exemplar) {
            Ok(exemplar) => view.exemplars.push(exemplar),
            Err(what) => {
                view.exemplars_dropped += 1;
                if view.exemplar_drop_reason.is_none() {
                    let described = describe_labels_ref(&view.labels[labels.clone()]);
                    view.exemplar_drop_reason = Some(format!(
                        "series {index} ({described}): exemplar {exemplar_index}: {what}"
                    ));
                }
            }
        }
    }
    view.spans.push(SeriesSpan {
        labels,
        samples: samples_start..view.samples.len(),
        exemplars: exemplars_start..view.exemplars.len(),
    });
    Ok(())
}

/// Checks one series' labels as Prometheus' write path does and appends the kept ones
/// (non-empty values), sorted by name, to `view.labels`; returns their range.
fn validate_labels<'a>(
    index: usize,
    raw_labels: &[RawLabel<'a>],
    limits: &DecodeLimits,
    view: &mut RequestView<'a>,
) -> Result<Range<usize>> {
    let invalid = |description: String, what: String| Error::InvalidSeries {
        index,
        reason: format!("({description}): {what}"),
    };
    if raw_labels.len() > limits.max_label_names_per_series {
        return Err(invalid(
            describe_raw_labels(raw_labels),
            format!(
                "has {} labels; limit is {} (max_label_names_per_series)",
                raw_labels.len(),
                limits.max_label_names_per_series
            ),
        ));
    }
    let start = view.labels.len();
    for (position, &(name, value)) in raw_labels.iter().enumerate() {
        let checked = check_label(position, name, value, limits);
        let (name, value) = match checked {
            Ok(pair) => pair,
            Err(what) => {
                view.labels.truncate(start);
                return Err(invalid(describe_raw_labels(raw_labels), what));
            }
        };
        if !value.is_empty() {
            view.labels.push(LabelRef { name, value });
        }
    }
    if view.labels.len() == start {
        let what = "label set is empty (labels with empty values are dropped)".to_string();
        return Err(invalid(describe_raw_labels(raw_labels), what));
    }
    let labels = &mut view.labels[start..];
    // Senders sort already (Prometheus requires it); checking is cheaper than sorting.
    if !labels.windows(2).all(|pair| pair[0].name <= pair[1].name) {
        labels.sort_by(|a, b| a.name.cmp(b.name));
    }
    if let Some(pair) = labels.windows(2).find(|pair| pair[0].name == pair[1].name) {
        let what = format!(
            "label name {} appears more than once",
            quote_truncated(pair[0].name.as_bytes())
        );
        let described = describe_labels_ref(labels);
        view.labels.truncate(start);
        return Err(invalid(described, what));
    }
    Ok(start..view.labels.len())
}

fn decode_label(message: &[u8]) -> Result<RawLabel<'_>> {
    let mut name: &[u8] = &[];
    let mut value: &[u8] = &[];
    let mut reader = WireReader::new(message);
    while let Some((field, wire)) = reader.next_field().map_err(bad_protobuf("Label"))? {
        match (field, wire) {
            (1, WireValue::Bytes(bytes)) => name = bytes,
            (2, WireValue::Bytes(bytes)) => value = bytes,
            (1 | 2, _) => return Err(wrong_wire_type("Label", field)),
            _ => {}
        }
    }
    Ok((name, value))
}

fn decode_sample(message: &[u8]) -> Result<Sample> {
    let mut value = 0.0;
    let mut timestamp_millis = 0i64;
    let mut reader = WireReader::new(message);
    while let Some((field, wire)) = reader.next_field().map_err(bad_protobuf("Sample"))? {
        match (field, wire) {
            (1, WireValue::Fixed64(bits)) => value = f64::from_bits(bits),
            // int64 is a two's-complement varint: the cast restores negative values.
            (2, WireValue::Varint(raw)) => timestamp_millis = raw as i64,
            (1 | 2, _) => return Err(wrong_wire_type("Sample", field)),
            _ => {}
        }
    }
    Ok(Sample {
        timestamp: time::from_millis(timestamp_millis),
        value,
    })
}

fn bad_protobuf(message: &'static str) -> impl Fn(WireError) -> Error {
    move |what| Error::BadProtobuf(format!("{message}: {what}"))
}

fn wrong_wire_type(message: &str, field: u32) -> Error {
    Error::BadProtobuf(format!("{message}: field {field} has the wrong wire type"))
}

/// `{name="value", ...}` of checked labels, for messages.
fn describe_labels_ref(labels: &[LabelRef<'_>]) -> String {
    let raw: Vec<RawLabel<'_>> = labels
        .iter()
        .map(|l| (l.name.as_bytes(), l.value.as_bytes()))
        .collect();
    describe_raw_labels(&raw)
}
