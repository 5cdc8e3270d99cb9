//! Hand-written Prometheus remote_write 1.0 encoding into reused buffers.
//!
//! A load generator must not be the bottleneck of the system it measures, so this
//! writes the protobuf wire format directly: each series' labels are encoded once
//! (when its target starts) and copied as bytes into every request, and samples are
//! appended without building intermediate structs. The message layout is
//! `prometheus.WriteRequest` from `prompb/remote.proto` / `types.proto`:
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; }
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }
//! ```
//!
//! The request body is the message compressed with snappy's raw block format.

/// Wire tag of field 1 with wire type LEN.
const FIELD_1_LEN: u8 = 0x0a;
/// Wire tag of field 2 with wire type LEN.
const FIELD_2_LEN: u8 = 0x12;
/// Wire tag of field 1 with wire type I64 (double).
const FIELD_1_I64: u8 = 0x09;
/// Wire tag of field 2 with wire type VARINT.
const FIELD_2_VARINT: u8 = 0x10;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation to the low 7 bits is the point of the encoding.
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 significant bits, at least 1.
    let significant_bits = 64 - (value | 1).leading_zeros() as usize;
    significant_bits.div_ceil(7)
}

/// Appends the `Label` fields of one `TimeSeries` (field 1, repeated) to `out`.
/// `labels` must already be sorted by name, as remote_write requires.
pub(crate) fn encode_labels<'a>(
    out: &mut Vec<u8>,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    for (name, value) in labels {
        let name_len = name.len() as u64;
        let value_len = value.len() as u64;
        let label_len =
            1 + varint_len(name_len) + name.len() + 1 + varint_len(value_len) + value.len();
        out.push(FIELD_1_LEN);
        put_varint(out, label_len as u64);
        out.push(FIELD_1_LEN);
        put_varint(out, name_len);
        out.extend_from_slice(name.as_bytes());
        out.push(FIELD_2_LEN);
        put_varint(out, value_len);
        out.extend_from_slice(value.as_bytes());
    }
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

fn take_len_field<'a>(bytes: &mut &'a [u8], tag: u8) -> Option<&'a [u8]> {
    let (&found, rest) = bytes.split_first()?;
    *bytes = rest;
    if found != tag {
        return None;
    }
    let len = usize::try_from(take_varint(bytes)?).ok()?;
    if len > bytes.len() {
        return None;
    }
    let (field, rest) = bytes.split_at(len);
    *bytes = rest;
    Some(field)
}

/// The `(name, value)` pairs of labels encoded by [`encode_labels`]; `None` when the
/// bytes are not such an encoding.
pub(crate) fn decode_labels(mut bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    while !bytes.is_empty() {
        let mut label = take_len_field(&mut bytes, FIELD_1_LEN)?;
        let name = take_len_field(&mut label, FIELD_1_LEN)?;
        let value = take_len_field(&mut label, FIELD_2_LEN)?;
        if !label.is_empty() {
            return None;
        }
        labels.push((
            String::from_utf8(name.to_vec()).ok()?,
            String::from_utf8(value.to_vec()).ok()?,
        ));
    }
    Some(labels)
}

/// One encoded, compressed remote_write request body.
#[derive(Debug)]
pub(crate) struct EncodedRequest {
    pub(crate) body: Vec<u8>,
    pub(crate) samples: u64,
    pub(crate) uncompressed_bytes: u64,
}

/// Accumulates samples into one `WriteRequest`, then compresses it. Buffers are kept
/// between requests.
#[derive(Debug)]
pub(crate) struct BatchEncoder {
    raw: Vec<u8>,
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
    samples: u64,
}

impl BatchEncoder {
    pub(crate) fn new() -> BatchEncoder {
        BatchEncoder {
            raw: Vec::with_capacity(256 * 1024),
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
            samples: 0,
        }
    }

    /// Appends one `TimeSeries` holding `labels` (as made by [`encode_labels`]) and one
    /// sample.
    pub(crate) fn push(&mut self, labels: &[u8], value: f64, timestamp_ms: i64) {
        // int64 fields are encoded as the two's complement u64 varint.
        let timestamp = timestamp_ms as u64;
        let sample_len = 1 + 8 + 1 + varint_len(timestamp);
        let series_len = labels.len() + 1 + varint_len(sample_len as u64) + sample_len;
        let raw = &mut self.raw;
        raw.push(FIELD_1_LEN);
        put_varint(raw, series_len as u64);
        raw.extend_from_slice(labels);
        raw.push(FIELD_2_LEN);
        put_varint(raw, sample_len as u64);
        raw.push(FIELD_1_I64);
        raw.extend_from_slice(&value.to_le_bytes());
        raw.push(FIELD_2_VARINT);
        put_varint(raw, timestamp);
        self.samples += 1;
    }

    pub(crate) fn samples(&self) -> u64 {
        self.samples
    }

    /// Compresses what was pushed into a request body and starts a new request.
    pub(crate) fn take_request(&mut self) -> Result<EncodedRequest, snap::Error> {
        let max_len = snap::raw::max_compress_len(self.raw.len());
        if self.compressed.len() < max_len {
            self.compressed.resize(max_len, 0);
        }
        let compressed_len = self.snappy.compress(&self.raw, &mut self.compressed)?;
        let request = EncodedRequest {
            body: self.compressed[..compressed_len].to_vec(),
            samples: self.samples,
            uncompressed_bytes: self.raw.len() as u64,
        };
        self.raw.clear();
        self.samples = 0;
        Ok(request)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use prost::Message;

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub(crate) timeseries: Vec<TimeSeries>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub(crate) labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub(crate) samples: Vec<Sample>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Label {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
        #[prost(string, tag = "2")]
        pub(crate) value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Sample {
        #[prost(double, tag = "1")]
        pub(crate) value: f64,
        #[prost(int64, tag = "2")]
        pub(crate) timestamp: i64,
    }

    pub(crate) fn decode(body: &[u8]) -> WriteRequest {
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        WriteRequest::decode(raw.as_slice()).unwrap()
    }

    #[test]
    fn varint_len_matches_encoding() {
        for value in [0, 1, 127, 128, 16_383, 16_384, 1 << 35, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "value {value}");
        }
    }

    #[test]
    fn labels_decode_back() {
        let long_value = "v".repeat(300);
        let labels = vec![
            ("__name__", "up"),
            ("instance", "a:9100"),
            ("long", long_value.as_str()),
        ];
        let mut encoded = Vec::new();
        encode_labels(&mut encoded, labels.iter().copied());
        let decoded = decode_labels(&encoded).unwrap();
        let decoded: Vec<(&str, &str)> = decoded
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(decoded, labels);
        assert_eq!(decode_labels(&[]), Some(Vec::new()));
        assert_eq!(decode_labels(&encoded[..encoded.len() - 1]), None);
        assert_eq!(decode_labels(&[0x0a, 0xff]), None);
    }

    #[test]
    fn batch_decodes_as_prost_write_request() {
        let long_value = "v".repeat(300);
        let series: Vec<Vec<(&str, &str)>> = vec![
            vec![("__name__", "up"), ("instance", "a:9100"), ("job", "node")],
            vec![("__name__", "x"), ("long", long_value.as_str())],
            vec![],
        ];
        let mut encoder = BatchEncoder::new();
        let samples = [(1.5, 1_700_000_000_123), (-0.0, 0), (f64::MAX, -5)];
        for _round in 0..2 {
            for (labels, (value, timestamp)) in series.iter().zip(samples) {
                let mut encoded = Vec::new();
                encode_labels(&mut encoded, labels.iter().copied());
                encoder.push(&encoded, value, timestamp);
            }
            assert_eq!(encoder.samples(), 3);
            let request = encoder.take_request().unwrap();
            assert_eq!(request.samples, 3);
            assert_eq!(encoder.samples(), 0);
            let decoded = decode(&request.body);
            assert_eq!(decoded.timeseries.len(), 3);
            for ((got, labels), (value, timestamp)) in
                decoded.timeseries.iter().zip(&series).zip(samples)
            {
                let got_labels: Vec<(&str, &str)> = got
                    .labels
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str()))
                    .collect();
                assert_eq!(&got_labels, labels);
                assert_eq!(got.samples.len(), 1);
                assert_eq!(got.samples[0].value.to_bits(), f64::to_bits(value));
                assert_eq!(got.samples[0].timestamp, timestamp);
            }
        }
    }
}
