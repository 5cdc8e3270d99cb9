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
    if let Some(label) = decode_label_canonical(message) {
        return Ok(label);
    }
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

/// The layout every encoder writes for a label with a name and a value — field 1
/// then field 2, both short — read without the general field loop (labels are most
/// of a request). `None` sends anything else to the general path.
#[inline]
fn decode_label_canonical(message: &[u8]) -> Option<RawLabel<'_>> {
    let [0x0a, name_len, rest @ ..] = message else {
        return None;
    };
    if *name_len >= 0x80 {
        return None;
    }
    let (name, rest) = rest.split_at_checked(usize::from(*name_len))?;
    let [0x12, value_len, rest @ ..] = rest else {
        return None;
    };
    if *value_len >= 0x80 || rest.len() != usize::from(*value_len) {
        return None;
    }
    Some((name, rest))
}

fn decode_sample(message: &[u8]) -> Result<Sample> {
    // The usual layout: field 1 (fixed64 value) then field 2 (varint timestamp).
    if let [0x09, b0, b1, b2, b3, b4, b5, b6, b7, 0x10, timestamp @ ..] = message {
        let mut reader = WireReader::new(timestamp);
        if let Some(raw) = reader.varint_to_end() {
            return Ok(Sample {
                timestamp: time::from_millis(raw as i64),
                value: f64::from_le_bytes([*b0, *b1, *b2, *b3, *b4, *b5, *b6, *b7]),
            });
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_any_order_decode_like_the_usual_layout() {
        // Label with the value first, then the name.
        let label = [0x12, 1, b'v', 0x0a, 2, b'n', b'm'];
        assert_eq!(decode_label(&label).unwrap(), (&b"nm"[..], &b"v"[..]));
        assert_eq!(decode_label_canonical(&label), None);
        let canonical = [0x0a, 2, b'n', b'm', 0x12, 1, b'v'];
        assert_eq!(
            decode_label_canonical(&canonical),
            Some((&b"nm"[..], &b"v"[..]))
        );
        // A truncated usual layout is left to the general path, which refuses it.
        assert_eq!(decode_label_canonical(&canonical[..6]), None);
        assert!(decode_label(&canonical[..6]).is_err());

        // Sample with the timestamp first.
        let mut sample = vec![0x10, 0xe8, 0x07, 0x09];
        sample.extend_from_slice(&2.5f64.to_le_bytes());
        let decoded = decode_sample(&sample).unwrap();
        assert_eq!(
            (decoded.timestamp, decoded.value),
            (time::from_millis(1000), 2.5)
        );
        // And the usual layout, with a negative timestamp (10-byte varint).
        let mut usual = vec![0x09];
        usual.extend_from_slice(&(-1.5f64).to_le_bytes());
        usual.push(0x10);
        prost::encoding::encode_varint(-5i64 as u64, &mut usual);
        let decoded = decode_sample(&usual).unwrap();
        assert_eq!(
            (decoded.timestamp, decoded.value),
            (time::from_millis(-5), -1.5)
        );
    }
}
