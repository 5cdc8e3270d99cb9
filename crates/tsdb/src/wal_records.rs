//! What the store writes into its WAL. One WAL record is a batch of entries, each
//! `[type u8][payload length uvarint][payload]`; unknown types are skipped so newer
//! writers stay readable. Described in `crates/tsdb/FORMAT.md`.

use sightline_model::{Label, Labels, MetricMetadata, MetricType};

use crate::encoding::{Reader, put_str, put_uvarint, put_varint};
use crate::{Error, Result};

const SERIES: u8 = 1;
const SAMPLES: u8 = 2;
const EXEMPLARS: u8 = 3;
const METADATA: u8 = 4;
const NEXT_REF: u8 = 5;
/// First byte of a compressed record: `[COMPRESSED][raw_len uvarint][zstd frame of the
/// entries]`. Never a valid entry type.
const COMPRESSED: u8 = 0xfe;
/// Records at least this long are compressed (when it helps).
const COMPRESS_FROM_BYTES: usize = 512;
const ZSTD_LEVEL: i32 = 1;
/// Refuse compressed records claiming more than this (a corrupt length).
const MAX_RECORD_BYTES: usize = 1 << 30;

/// A series reference as the WAL knows it. Never reused.
pub(crate) type SeriesRef = u64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefSample {
    pub(crate) series: SeriesRef,
    pub(crate) t: i64,
    pub(crate) v: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefExemplar {
    pub(crate) series: SeriesRef,
    pub(crate) t: i64,
    pub(crate) v: f64,
    pub(crate) labels: Labels,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WalEntry {
    Series(Vec<(SeriesRef, Labels)>),
    Samples(Vec<RefSample>),
    Exemplars(Vec<RefExemplar>),
    Metadata(Vec<MetricMetadata>),
    NextRef(SeriesRef),
}

/// Builds one WAL record out of several entries.
#[derive(Debug, Default)]
pub(crate) struct RecordBuilder {
    out: Vec<u8>,
    payload: Vec<u8>,
}

fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(out, labels.len() as u64);
    for label in labels {
        put_str(out, &label.name);
        put_str(out, &label.value);
    }
}

impl RecordBuilder {
    pub(crate) fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    fn finish_entry(&mut self, kind: u8) {
        self.out.push(kind);
        put_uvarint(&mut self.out, self.payload.len() as u64);
        self.out.append(&mut self.payload);
    }

    pub(crate) fn series<'a>(
        &mut self,
        series: impl ExactSizeIterator<Item = (SeriesRef, &'a Labels)>,
    ) {
        if series.len() == 0 {
            return;
        }
        put_uvarint(&mut self.payload, series.len() as u64);
        for (series_ref, labels) in series {
            put_uvarint(&mut self.payload, series_ref);
            put_labels(&mut self.payload, labels);
        }
        self.finish_entry(SERIES);
    }

    pub(crate) fn samples(&mut self, samples: &[RefSample]) {
        if samples.is_empty() {
            return;
        }
        put_uvarint(&mut self.payload, samples.len() as u64);
        for sample in samples {
            put_uvarint(&mut self.payload, sample.series);
            put_varint(&mut self.payload, sample.t);
            self.payload
                .extend_from_slice(&sample.v.to_bits().to_le_bytes());
        }
        self.finish_entry(SAMPLES);
    }

    pub(crate) fn exemplars(&mut self, exemplars: &[RefExemplar]) {
        if exemplars.is_empty() {
            return;
        }
        put_uvarint(&mut self.payload, exemplars.len() as u64);
        for exemplar in exemplars {
            put_uvarint(&mut self.payload, exemplar.series);
            put_varint(&mut self.payload, exemplar.t);
            self.payload
                .extend_from_slice(&exemplar.v.to_bits().to_le_bytes());
            put_labels(&mut self.payload, &exemplar.labels);
        }
        self.finish_entry(EXEMPLARS);
    }

    pub(crate) fn metadata(&mut self, metadata: &[MetricMetadata]) {
        if metadata.is_empty() {
            return;
        }
        put_uvarint(&mut self.payload, metadata.len() as u64);
        for m in metadata {
            put_str(&mut self.payload, &m.metric_family_name);
            put_str(&mut self.payload, m.metric_type.as_str());
            put_str(&mut self.payload, &m.help);
            put_str(&mut self.payload, &m.unit);
        }
        self.finish_entry(METADATA);
    }

    pub(crate) fn next_ref(&mut self, next: SeriesRef) {
        put_uvarint(&mut self.payload, next);
        self.finish_entry(NEXT_REF);
    }

    /// The finished record: zstd-compressed when that makes it smaller.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let raw = std::mem::take(&mut self.out);
        if raw.len() < COMPRESS_FROM_BYTES {
            return raw;
        }
        let Some(compressed) = compress(&raw) else {
            return raw;
        };
        if compressed.len() + 11 >= raw.len() {
            return raw;
        }
        let mut out = Vec::with_capacity(compressed.len() + 11);
        out.push(COMPRESSED);
        put_uvarint(&mut out, raw.len() as u64);
        out.extend_from_slice(&compressed);
        out
    }
}

/// zstd with reused contexts: creating one per record (what `zstd::bulk::compress`
/// does) allocated and initialised a few hundred kilobytes on every append. At most
/// [`KEPT_COMPRESSORS`] idle contexts are kept (each holds about a megabyte), not one
/// per thread of the blocking pool.
fn compress(raw: &[u8]) -> Option<Vec<u8>> {
    static IDLE: parking_lot::Mutex<Vec<zstd::bulk::Compressor<'static>>> =
        parking_lot::Mutex::new(Vec::new());
    let mut compressor = match IDLE.lock().pop() {
        Some(compressor) => compressor,
        None => zstd::bulk::Compressor::new(ZSTD_LEVEL).ok()?,
    };
    let compressed = compressor.compress(raw).ok();
    let mut idle = IDLE.lock();
    if idle.len() < KEPT_COMPRESSORS {
        idle.push(compressor);
    }
    compressed
}

/// Idle zstd contexts kept for reuse (about the number of cores).
const KEPT_COMPRESSORS: usize = 2;

fn read_labels(reader: &mut Reader<'_>) -> Result<Labels> {
    let count = reader.len(reader.remaining())?;
    let mut labels = Vec::with_capacity(count);
    for _ in 0..count {
        let name = reader.str()?;
        let value = reader.str()?;
        labels.push(Label::new(name, value));
    }
    // Labels may legitimately be empty for exemplars.
    if labels.is_empty() {
        return Ok(Labels::empty());
    }
    Labels::try_from_untrusted(labels)
        .map_err(|e| Error::Corrupt(format!("wal record: label set: {e}")))
}

fn f64_le(reader: &mut Reader<'_>) -> Result<f64> {
    Ok(f64::from_bits(reader.u64_le()?))
}

/// Decodes one WAL record into its entries.
pub(crate) fn decode(record: &[u8]) -> Result<Vec<WalEntry>> {
    if record.first() == Some(&COMPRESSED) {
        let mut reader = Reader::new(&record[1..], "wal record");
        let raw_len = reader.len(MAX_RECORD_BYTES)?;
        let frame = reader.bytes(reader.remaining())?;
        // Streaming, so a corrupt length cannot make us allocate it up front.
        let mut raw = Vec::new();
        let decoder = zstd::stream::read::Decoder::new(frame)
            .map_err(|e| Error::Corrupt(format!("wal record: decompression: {e}")))?;
        std::io::Read::read_to_end(&mut std::io::Read::take(decoder, raw_len as u64), &mut raw)
            .map_err(|e| Error::Corrupt(format!("wal record: decompression: {e}")))?;
        if raw.len() != raw_len {
            return Err(Error::Corrupt("wal record: decompressed length".into()));
        }
        if raw.first() == Some(&COMPRESSED) {
            return Err(Error::Corrupt("wal record: nested compression".into()));
        }
        return decode(&raw);
    }
    let mut reader = Reader::new(record, "wal record");
    let mut entries = Vec::new();
    while !reader.is_empty() {
        let kind = reader.u8()?;
        let len = reader.len(reader.remaining())?;
        let mut payload = Reader::new(reader.bytes(len)?, "wal record entry");
        let entry = match kind {
            SERIES => {
                let count = payload.len(len)?;
                let mut series = Vec::with_capacity(count);
                for _ in 0..count {
                    let series_ref = payload.uvarint()?;
                    series.push((series_ref, read_labels(&mut payload)?));
                }
                WalEntry::Series(series)
            }
            SAMPLES => {
                let count = payload.len(len)?;
                let mut samples = Vec::with_capacity(count);
                for _ in 0..count {
                    let series = payload.uvarint()?;
                    let t = payload.varint()?;
                    let v = f64_le(&mut payload)?;
                    samples.push(RefSample { series, t, v });
                }
                WalEntry::Samples(samples)
            }
            EXEMPLARS => {
                let count = payload.len(len)?;
                let mut exemplars = Vec::with_capacity(count);
                for _ in 0..count {
                    let series = payload.uvarint()?;
                    let t = payload.varint()?;
                    let v = f64_le(&mut payload)?;
                    let labels = read_labels(&mut payload)?;
                    exemplars.push(RefExemplar {
                        series,
                        t,
                        v,
                        labels,
                    });
                }
                WalEntry::Exemplars(exemplars)
            }
            METADATA => {
                let count = payload.len(len)?;
                let mut metadata = Vec::with_capacity(count);
                for _ in 0..count {
                    metadata.push(MetricMetadata {
                        metric_family_name: payload.str()?.to_string(),
                        metric_type: MetricType::parse(payload.str()?),
                        help: payload.str()?.to_string(),
                        unit: payload.str()?.to_string(),
                    });
                }
                WalEntry::Metadata(metadata)
            }
            NEXT_REF => WalEntry::NextRef(payload.uvarint()?),
            _ => continue,
        };
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let mut builder = RecordBuilder::default();
        builder.series([(7u64, &labels)].into_iter());
        let samples = vec![
            RefSample {
                series: 7,
                t: -5,
                v: f64::NAN,
            },
            RefSample {
                series: 7,
                t: 9,
                v: 1.5,
            },
        ];
        builder.samples(&samples);
        let exemplars = vec![RefExemplar {
            series: 7,
            t: 3,
            v: 2.0,
            labels: Labels::from_pairs([("trace_id", "ab")]),
        }];
        builder.exemplars(&exemplars);
        let metadata = vec![MetricMetadata {
            metric_family_name: "up".into(),
            metric_type: MetricType::Gauge,
            help: "h".into(),
            unit: String::new(),
        }];
        builder.metadata(&metadata);
        builder.next_ref(8);
        let record = builder.take();
        let entries = decode(&record).unwrap();
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[0], WalEntry::Series(vec![(7, labels)]));
        match &entries[1] {
            WalEntry::Samples(s) => assert!(s[0].v.is_nan() && s[1] == samples[1]),
            other => panic!("{other:?}"),
        }
        assert_eq!(entries[2], WalEntry::Exemplars(exemplars));
        assert_eq!(entries[3], WalEntry::Metadata(metadata));
        assert_eq!(entries[4], WalEntry::NextRef(8));

        let many: Vec<RefSample> = (0..1000)
            .map(|i| RefSample {
                series: i % 10,
                t: 1_700_000_000_000 + (i as i64 / 10) * 15_000,
                v: (i % 7) as f64,
            })
            .collect();
        builder.samples(&many);
        let record = builder.take();
        assert_eq!(record[0], COMPRESSED);
        assert!(record.len() < 1000 * 4, "{} bytes", record.len());
        assert_eq!(decode(&record).unwrap(), vec![WalEntry::Samples(many)]);
        assert!(decode(&[COMPRESSED, 5, 1, 2, 3]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode(&bytes);
        }
    }
}
