//! Prometheus remote_write 1.0: a snappy raw block holding a protobuf
//! `prometheus.WriteRequest`, decoded and validated into the model.
//!
//! [`decode`] is the server side; [`encode_request`] and [`to_proto`] are the client
//! side (tests and the load generator).

pub mod proto;
mod view;
mod wire;

pub use view::{BufferLabels, RequestView, Scratch, ScratchPool, decode_body, decode_view};

use prost::Message;
use sightline_model::{Exemplar, Label, Labels, MetricMetadata, WriteRequest, time};

pub use crate::{Error, Result};

/// Bounds applied while decoding one request. The defaults are safe for a public
/// endpoint; the server sets them from config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest decompressed body accepted; checked against the snappy header before
    /// any decompression. Default 64 MiB.
    pub max_decompressed_bytes: usize,
    /// Most labels one series may carry. Default 40.
    pub max_label_names_per_series: usize,
    /// Longest label name, in bytes. Default 1024.
    pub max_label_name_bytes: usize,
    /// Longest label value, in bytes. Default 4096.
    pub max_label_value_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> DecodeLimits {
        DecodeLimits {
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_label_names_per_series: 40,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 4096,
        }
    }
}

/// A decoded, validated request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// Series (timestamps in nanoseconds) and metadata.
    pub request: WriteRequest,
    /// Native histogram samples that were present but not ingested (not supported yet);
    /// the server should tell the client they were dropped.
    pub native_histograms_dropped: u64,
    /// Exemplars dropped because their labels are not valid UTF-8 or their label text
    /// is longer than [`MAX_EXEMPLAR_LABEL_CHARS`] (Prometheus' `ErrExemplarLabelLength`).
    /// As in Prometheus, only the exemplar is dropped: its series and samples are kept.
    pub exemplars_dropped: u64,
    /// Why the first dropped exemplar was dropped, naming its series, for logs.
    pub exemplar_drop_reason: Option<String>,
}

/// Longest total exemplar label text (the sum over the labels of the characters of
/// the name and the value), as in OpenMetrics and Prometheus' `ExemplarMaxLabelSetLength`.
pub const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

/// Decodes a remote_write 1.0 body: snappy (raw block) → protobuf → validated model.
///
/// Errors: [`Error::BadSnappy`], [`Error::TooLarge`] (checked from the snappy header
/// before decompressing), [`Error::BadProtobuf`], [`Error::InvalidSeries`] (the first
/// bad series; the whole request is refused, as Prometheus does for malformed labels).
pub fn decode(body: &[u8], limits: &DecodeLimits) -> Result<Decoded> {
    let mut scratch = Scratch::default();
    let view = decode_body(body, limits, &mut scratch)?;
    Ok(Decoded {
        request: view.to_write_request(),
        native_histograms_dropped: view.native_histograms_dropped,
        exemplars_dropped: view.exemplars_dropped,
        exemplar_drop_reason: view.exemplar_drop_reason.clone(),
    })
}

/// Decompresses a snappy raw block into `output` (replacing its contents), refusing
/// before allocation when the header claims more than `limits.max_decompressed_bytes`.
/// Reuses `output`'s allocation and the bytes it already holds.
pub fn decompress_into(body: &[u8], limits: &DecodeLimits, output: &mut Vec<u8>) -> Result<()> {
    let claimed = snap::raw::decompress_len(body).map_err(|e| match e {
        snap::Error::TooBig { given, .. } => Error::TooLarge {
            decompressed: usize::try_from(given).unwrap_or(usize::MAX),
            limit: limits.max_decompressed_bytes,
        },
        other => Error::BadSnappy(other.to_string()),
    })?;
    if claimed > limits.max_decompressed_bytes {
        return Err(Error::TooLarge {
            decompressed: claimed,
            limit: limits.max_decompressed_bytes,
        });
    }
    // Only new room is zeroed: snappy writes every byte it reports, and what a
    // failed decompression leaves is never read. (Zeroing the whole buffer again
    // for every request cost 2% of the remote_write CPU.)
    if output.len() < claimed {
        output.resize(claimed, 0);
    }
    output.truncate(claimed);
    let written = snap::raw::Decoder::new()
        .decompress(body, output)
        .map_err(|e| Error::BadSnappy(e.to_string()))?;
    output.truncate(written);
    Ok(())
}

/// An exemplar in the model, or why it must be dropped: a label that is not UTF-8, or
/// label text longer than [`MAX_EXEMPLAR_LABEL_CHARS`] characters.
fn convert_exemplar(exemplar: &proto::Exemplar) -> std::result::Result<Exemplar, String> {
    let mut pairs = Vec::with_capacity(exemplar.labels.len());
    let mut chars = 0usize;
    for (position, label) in exemplar.labels.iter().enumerate() {
        let (name, value) = utf8_label(position, &label.name, &label.value)?;
        chars = chars
            .saturating_add(name.chars().count())
            .saturating_add(value.chars().count());
        if chars > MAX_EXEMPLAR_LABEL_CHARS {
            return Err(format!(
                "exemplar labels are longer than {MAX_EXEMPLAR_LABEL_CHARS} characters"
            ));
        }
        pairs.push((name, value));
    }
    Ok(Exemplar {
        labels: Labels::from_pairs(pairs),
        timestamp: time::from_millis(exemplar.timestamp),
        value: exemplar.value,
    })
}

/// Checks one raw label against the limits and UTF-8; the label as text.
fn check_label<'a>(
    position: usize,
    name: &'a [u8],
    value: &'a [u8],
    limits: &DecodeLimits,
) -> std::result::Result<(&'a str, &'a str), String> {
    if name.is_empty() && !value.is_empty() {
        return Err(format!("label name of label {position} is empty"));
    }
    if name.len() > limits.max_label_name_bytes {
        return Err(format!(
            "label name {} is {} bytes long; limit is {} (max_label_name_bytes)",
            quote_truncated(name),
            name.len(),
            limits.max_label_name_bytes
        ));
    }
    if value.len() > limits.max_label_value_bytes {
        return Err(format!(
            "value of label {} is {} bytes long; limit is {} (max_label_value_bytes)",
            quote_truncated(name),
            value.len(),
            limits.max_label_value_bytes
        ));
    }
    utf8_label(position, name, value)
}

/// The label as text, or a message naming which part is not UTF-8.
fn utf8_label<'a>(
    position: usize,
    name: &'a [u8],
    value: &'a [u8],
) -> std::result::Result<(&'a str, &'a str), String> {
    let name_text = utf8(name).ok_or_else(|| {
        format!(
            "name of label {position} ({}) is not valid UTF-8",
            quote_truncated(name)
        )
    })?;
    let value_text = utf8(value).ok_or_else(|| {
        format!(
            "value of label {} is not valid UTF-8",
            quote_truncated(name)
        )
    })?;
    Ok((name_text, value_text))
}

/// `bytes` as text if it is UTF-8. Label text is nearly always ASCII, which a
/// word-at-a-time scan confirms several times faster than full UTF-8 validation of
/// short strings (this was ~10% of the remote_write CPU).
#[inline]
fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: every byte is below 0x80, and ASCII is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

fn convert_metadata(metadata: proto::MetricMetadata) -> MetricMetadata {
    let metric_type = proto::MetricType::try_from(metadata.r#type)
        .unwrap_or(proto::MetricType::Unknown)
        .to_model();
    MetricMetadata {
        metric_family_name: lossy(metadata.metric_family_name),
        metric_type,
        help: lossy(metadata.help),
        unit: lossy(metadata.unit),
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Longest series description put into an error message.
const MAX_DESCRIPTION_CHARS: usize = 200;
/// Longest single label name or value quoted in an error message.
const MAX_QUOTED_CHARS: usize = 64;

/// `{__name__="x", job="a"}` from raw labels, lossy and truncated, for messages.
fn describe_raw_labels(labels: &[(&[u8], &[u8])]) -> String {
    let mut text = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(&String::from_utf8_lossy(name));
        text.push('=');
        text.push_str(&format!("{:?}", String::from_utf8_lossy(value)));
        if text.chars().count() > MAX_DESCRIPTION_CHARS {
            let cut: String = text.chars().take(MAX_DESCRIPTION_CHARS).collect();
            return format!("{cut}…}}");
        }
    }
    text.push('}');
    text
}

/// `"text"` from raw bytes, lossy and truncated, for messages.
fn quote_truncated(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() > MAX_QUOTED_CHARS {
        let cut: String = text.chars().take(MAX_QUOTED_CHARS).collect();
        return format!("{cut:?}…");
    }
    format!("{text:?}")
}

/// Client side: protobuf-encodes then snappy-compresses (raw block) a request, ready to
/// POST with `Content-Encoding: snappy`.
pub fn encode_request(request: &proto::WriteRequest) -> Vec<u8> {
    let protobuf = request.encode_to_vec();
    // Compression into a Vec only fails when the input exceeds snappy's 4 GiB maximum;
    // a request that large cannot be sent anyway, so an empty body (which the server
    // refuses) is the honest result.
    snap::raw::Encoder::new()
        .compress_vec(&protobuf)
        .unwrap_or_default()
}

/// Client side: the protobuf form of a model request (nanoseconds → milliseconds,
/// rounding toward negative infinity).
pub fn to_proto(request: &WriteRequest) -> proto::WriteRequest {
    let label = |l: &Label| proto::Label::new(l.name.as_str(), l.value.as_str());
    proto::WriteRequest {
        timeseries: request
            .series
            .iter()
            .map(|series| proto::TimeSeries {
                labels: series.labels.iter().map(label).collect(),
                samples: series
                    .samples
                    .iter()
                    .map(|s| proto::Sample {
                        value: s.value,
                        timestamp: time::to_millis(s.timestamp),
                    })
                    .collect(),
                exemplars: series
                    .exemplars
                    .iter()
                    .map(|e| proto::Exemplar {
                        labels: e.labels.iter().map(label).collect(),
                        value: e.value,
                        timestamp: time::to_millis(e.timestamp),
                    })
                    .collect(),
                histograms: Vec::new(),
            })
            .collect(),
        metadata: request
            .metadata
            .iter()
            .map(|m| {
                proto::MetricMetadata::new(
                    proto::MetricType::from_model(m.metric_type),
                    m.metric_family_name.as_str(),
                    m.help.as_str(),
                    m.unit.as_str(),
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
