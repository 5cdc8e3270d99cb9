//! Zero-copy decoding of a remote_write 1.0 `WriteRequest`.
//!
//! The generic prost path allocated a `Vec<u8>` for every label name and value, then a
//! `String` again for the model: about half of the ingest CPU went to malloc and free.
//! Here the protobuf is walked by hand (the schema is four small messages) and label
//! text stays in the decompressed buffer as `&str`; a request costs a handful of
//! allocations whatever its size. Exemplars and metadata are rare and go through the
//! prost structs of [`super::proto`].
//!
//! A series in the shape every Prometheus-compatible sender writes (labels first,
//! sorted, short, ASCII, then samples) is checked in one walk and its labels stay where
//! they arrived: [`BufferLabels`] reads them there, and its fingerprint hashes those
//! very bytes. Any other series gets checked positions into the body.

use prost::Message;
use sightline_model::{
    Exemplar, LabelSet, MetricMetadata, Sample, SeriesRef, TimeSeries, WriteRequest, time,
};

use super::wire::{WireError, WireReader, WireValue};
use super::{DecodeLimits, check_label, convert_exemplar, convert_metadata, describe_raw_labels};
use super::{Error, Result, proto, quote_truncated};

/// The buffers one request is decompressed and decoded into. Kept between requests
/// ([`ScratchPool`]): fresh buffers of a few hundred kilobytes per request cost page
/// faults, zeroing and `munmap` TLB shootdowns, about a tenth of the ingest CPU.
#[derive(Debug, Default)]
pub struct Scratch {
    protobuf: Vec<u8>,
    decoded: Decoded,
}

/// What a request decodes into, besides its body.
#[derive(Debug, Default)]
struct Decoded {
    labels: Vec<LabelPosition>,
    samples: Vec<Sample>,
    exemplars: Vec<Exemplar>,
    spans: Vec<SeriesSpan>,
}

impl Scratch {
    /// Bytes the buffers hold (capacity, not length).
    pub fn capacity_bytes(&self) -> usize {
        let decoded = &self.decoded;
        self.protobuf.capacity()
            + decoded.labels.capacity() * std::mem::size_of::<LabelPosition>()
            + decoded.samples.capacity() * std::mem::size_of::<Sample>()
            + decoded.exemplars.capacity() * std::mem::size_of::<Exemplar>()
            + decoded.spans.capacity() * std::mem::size_of::<SeriesSpan>()
    }

    /// Empties the vectors, all but the body: `decompress_into` overwrites it and
    /// only zeroes room it adds.
    fn clear(&mut self) {
        let decoded = &mut self.decoded;
        decoded.labels.clear();
        decoded.samples.clear();
        decoded.exemplars.clear();
        decoded.spans.clear();
    }
}

/// A few [`Scratch`]es for concurrent requests to reuse. Bounded twice so that it
/// holds little memory: at most `max_pooled` of them, and none whose buffers grew
/// past `max_bytes_each` (an unusually large request frees its own).
#[derive(Debug)]
pub struct ScratchPool {
    free: std::sync::Mutex<Vec<Scratch>>,
    max_pooled: usize,
    max_bytes_each: usize,
}

impl ScratchPool {
    pub fn new(max_pooled: usize, max_bytes_each: usize) -> ScratchPool {
        ScratchPool {
            free: std::sync::Mutex::new(Vec::new()),
            max_pooled,
            max_bytes_each,
        }
    }

    /// The free list. A panic while it was locked left it whole (every change is one
    /// push or pop), so a poisoned lock is used as it is.
    fn free(&self) -> std::sync::MutexGuard<'_, Vec<Scratch>> {
        self.free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A scratch from the pool, or a new one.
    pub fn take(&self) -> Scratch {
        self.free().pop().unwrap_or_default()
    }

    /// Gives a scratch back (dropped when the pool is full or it grew too large).
    pub fn give(&self, mut scratch: Scratch) {
        if scratch.capacity_bytes() > self.max_bytes_each {
            return;
        }
        scratch.clear();
        let mut free = self.free();
        if free.len() < self.max_pooled {
            free.push(scratch);
        }
    }

    /// Bytes held by pooled scratches.
    pub fn pooled_bytes(&self) -> usize {
        self.free().iter().map(Scratch::capacity_bytes).sum()
    }
}

/// Where one checked label's name and value are in the decompressed body.
#[derive(Debug, Clone, Copy)]
struct LabelPosition {
    name_start: u32,
    name_len: u32,
    value_start: u32,
    value_len: u32,
}

impl LabelPosition {
    #[inline]
    fn name<'a>(&self, text: &'a [u8]) -> &'a [u8] {
        let start = self.name_start as usize;
        &text[start..start + self.name_len as usize]
    }

    #[inline]
    fn value<'a>(&self, text: &'a [u8]) -> &'a [u8] {
        let start = self.value_start as usize;
        &text[start..start + self.value_len as usize]
    }

    /// Name and value as text. Only for a position `validate_labels` checked, in the
    /// text it checked it in: both are then UTF-8.
    #[inline]
    fn checked_text<'a>(&self, text: &'a [u8]) -> (&'a str, &'a str) {
        // SAFETY: as the doc says; every caller holds a checked position and its text.
        unsafe {
            (
                std::str::from_utf8_unchecked(self.name(text)),
                std::str::from_utf8_unchecked(self.value(text)),
            )
        }
    }
}

/// Where one series' labels, samples and exemplars end in the scratch's vectors
/// (each starts where the previous series' ends).
#[derive(Debug, Clone, Copy)]
struct SeriesSpan {
    /// The labels' fingerprint, computed while they are in cache.
    fingerprint: u64,
    /// Where the labels are in the body when they stayed there, in the protobuf form
    /// of `fingerprint_of` (length 0: in the scratch's positions instead), and how
    /// many there are.
    in_place_start: u32,
    in_place_len: u32,
    in_place_count: u32,
    labels_end: u32,
    samples_end: u32,
    exemplars_end: u32,
}

/// One series' labels in the decompressed body: where they arrived, or checked
/// positions in it.
///
/// Made only by this module, from labels its decoder checked to be
/// UTF-8 text inside `text` (and, in place, in the protobuf form it checked), which
/// is borrowed (so unchanged) for as long as this lives.
#[derive(Debug, Clone, Copy)]
pub struct BufferLabels<'a> {
    text: &'a [u8],
    positions: &'a [LabelPosition],
    /// Non-empty: the labels as they arrived, used instead of `positions`.
    in_place: &'a [u8],
    in_place_count: usize,
    fingerprint: u64,
}

impl LabelSet for BufferLabels<'_> {
    fn label_count(&self) -> usize {
        if self.in_place.is_empty() {
            self.positions.len()
        } else {
            self.in_place_count
        }
    }

    #[inline]
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        BufferPairs {
            text: self.text,
            positions: self.positions.iter(),
            in_place: self.in_place,
        }
    }

    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// The pairs of [`BufferLabels`].
struct BufferPairs<'a> {
    text: &'a [u8],
    positions: std::slice::Iter<'a, LabelPosition>,
    in_place: &'a [u8],
}

impl<'a> Iterator for BufferPairs<'a> {
    type Item = (&'a str, &'a str);

    #[inline]
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.in_place.is_empty() {
            // See BufferLabels: every position was checked in this same text.
            return self
                .positions
                .next()
                .map(|label| label.checked_text(self.text));
        }
        // `0a L (0a n name 12 v value)`, as `decode_series` checked: one-byte lengths.
        let (name, value, rest) = split_short_label(self.in_place)?;
        self.in_place = rest;
        // SAFETY: see BufferLabels: checked UTF-8 by `validate_labels`.
        unsafe {
            Some((
                std::str::from_utf8_unchecked(name),
                std::str::from_utf8_unchecked(value),
            ))
        }
    }
}

/// The first label of labels in their short protobuf form, and what follows it;
/// `None` when `bytes` do not start with one.
#[inline]
fn split_short_label(bytes: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let [0x0a, length, rest @ ..] = bytes else {
        return None;
    };
    let (message, rest) = rest.split_at_checked(usize::from(*length))?;
    let (name, value) = decode_label_canonical(message)?;
    Some((name, value, rest))
}

/// A decoded, validated request whose label text is in the decompressed body.
#[derive(Debug)]
pub struct RequestView<'a> {
    text: &'a [u8],
    labels: &'a [LabelPosition],
    samples: &'a [Sample],
    exemplars: &'a [Exemplar],
    spans: &'a [SeriesSpan],
    /// Metric metadata, converted (lossy UTF-8, as before).
    pub metadata: Vec<MetricMetadata>,
    /// Native histogram samples present but not ingested (not supported yet).
    pub native_histograms_dropped: u64,
    /// Exemplars dropped as invalid (see [`super::Decoded::exemplars_dropped`]).
    pub exemplars_dropped: u64,
    /// Why the first dropped exemplar was dropped, naming its series, for logs.
    pub exemplar_drop_reason: Option<String>,
}

impl<'a> RequestView<'a> {
    /// The series, ready for `Db::append_series`.
    pub fn series(&self) -> Vec<SeriesRef<'a, BufferLabels<'a>>> {
        let mut labels_start = 0usize;
        let mut samples_start = 0usize;
        let mut exemplars_start = 0usize;
        self.spans
            .iter()
            .map(|span| {
                let (labels_end, samples_end, exemplars_end) = (
                    span.labels_end as usize,
                    span.samples_end as usize,
                    span.exemplars_end as usize,
                );
                let in_place_start = span.in_place_start as usize;
                let series = SeriesRef {
                    labels: BufferLabels {
                        text: self.text,
                        positions: &self.labels[labels_start..labels_end],
                        in_place: &self.text
                            [in_place_start..in_place_start + span.in_place_len as usize],
                        in_place_count: span.in_place_count as usize,
                        fingerprint: span.fingerprint,
                    },
                    samples: &self.samples[samples_start..samples_end],
                    exemplars: &self.exemplars[exemplars_start..exemplars_end],
                };
                (labels_start, samples_start, exemplars_start) =
                    (labels_end, samples_end, exemplars_end);
                series
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

/// What decoding gathers besides the scratch's vectors.
#[derive(Debug, Default)]
struct Extras {
    metadata: Vec<MetricMetadata>,
    native_histograms_dropped: u64,
    exemplars_dropped: u64,
    exemplar_drop_reason: Option<String>,
}

/// Decompresses (see [`super::decompress_into`]) and decodes a remote_write body into
/// `scratch`, without copying label text. Errors as [`super::decode`].
pub fn decode_body<'a>(
    body: &[u8],
    limits: &DecodeLimits,
    scratch: &'a mut Scratch,
) -> Result<RequestView<'a>> {
    scratch.clear();
    super::decompress_into(body, limits, &mut scratch.protobuf)?;
    let Scratch { protobuf, decoded } = scratch;
    build_view(protobuf, limits, decoded)
}

/// Decodes an already-decompressed `WriteRequest` into `scratch` (whose protobuf
/// buffer is not used). Errors as [`super::decode`]: [`Error::BadProtobuf`] or the
/// first [`Error::InvalidSeries`] (the whole request is refused).
pub fn decode_view<'a>(
    protobuf: &'a [u8],
    limits: &DecodeLimits,
    scratch: &'a mut Scratch,
) -> Result<RequestView<'a>> {
    scratch.clear();
    build_view(protobuf, limits, &mut scratch.decoded)
}

fn build_view<'a>(
    text: &'a [u8],
    limits: &DecodeLimits,
    decoded: &'a mut Decoded,
) -> Result<RequestView<'a>> {
    let extras = decode_into(text, limits, decoded)?;
    let decoded: &'a Decoded = decoded;
    Ok(RequestView {
        text,
        labels: &decoded.labels,
        samples: &decoded.samples,
        exemplars: &decoded.exemplars,
        spans: &decoded.spans,
        metadata: extras.metadata,
        native_histograms_dropped: extras.native_histograms_dropped,
        exemplars_dropped: extras.exemplars_dropped,
        exemplar_drop_reason: extras.exemplar_drop_reason,
    })
}

/// Where decoding writes: the body and the vectors of a [`Scratch`].
struct Decoder<'a, 'v> {
    text: &'a [u8],
    limits: &'v DecodeLimits,
    out: &'v mut Decoded,
    extras: Extras,
}

fn decode_into(protobuf: &[u8], limits: &DecodeLimits, out: &mut Decoded) -> Result<Extras> {
    // Positions are u32: refuse what they cannot address (far above any sane limit).
    if u32::try_from(protobuf.len()).is_err() {
        return Err(Error::TooLarge {
            decompressed: protobuf.len(),
            limit: limits.max_decompressed_bytes.min(u32::MAX as usize),
        });
    }
    let mut decoder = Decoder {
        text: protobuf,
        limits,
        out,
        extras: Extras::default(),
    };
    let mut raw_labels: Vec<RawLabel<'_>> = Vec::new();
    let mut reader = WireReader::new(protobuf);
    loop {
        if let Some(series) = reader.next_bytes_field(0x0a) {
            decoder.decode_series(series, &mut raw_labels)?;
            continue;
        }
        let Some((field, value)) = reader.next_field().map_err(bad_protobuf("WriteRequest"))?
        else {
            break;
        };
        match (field, value) {
            (1, WireValue::Bytes(series)) => decoder.decode_series(series, &mut raw_labels)?,
            (3, WireValue::Bytes(metadata)) => {
                let metadata = proto::MetricMetadata::decode(metadata)
                    .map_err(|e| Error::BadProtobuf(e.to_string()))?;
                decoder.extras.metadata.push(convert_metadata(metadata));
            }
            (1 | 3, _) => return Err(wrong_wire_type("WriteRequest", field)),
            _ => {}
        }
    }
    Ok(decoder.extras)
}

impl<'a> Decoder<'a, '_> {
    fn decode_series(
        &mut self,
        series: &'a [u8],
        raw_labels: &mut Vec<RawLabel<'a>>,
    ) -> Result<()> {
        if self.decode_usual_series(series) {
            return Ok(());
        }
        let index = self.out.spans.len();
        raw_labels.clear();
        let mut exemplar_messages: Vec<&'a [u8]> = Vec::new();
        let mut reader = WireReader::new(series);
        loop {
            // Labels and samples in their usual shape skip the general field loop.
            if let Some(label) = reader.next_short_bytes_field(0x0a) {
                raw_labels.push(decode_label(label)?);
                continue;
            }
            if let Some(sample) = reader.next_short_bytes_field(0x12) {
                self.out.samples.push(decode_sample(sample)?);
                continue;
            }
            let Some((field, value)) = reader.next_field().map_err(bad_protobuf("TimeSeries"))?
            else {
                break;
            };
            match (field, value) {
                (1, WireValue::Bytes(label)) => raw_labels.push(decode_label(label)?),
                (2, WireValue::Bytes(sample)) => self.out.samples.push(decode_sample(sample)?),
                (3, WireValue::Bytes(exemplar)) => exemplar_messages.push(exemplar),
                (4, WireValue::Bytes(_)) => self.extras.native_histograms_dropped += 1,
                (1..=4, _) => return Err(wrong_wire_type("TimeSeries", field)),
                _ => {}
            }
        }
        let labels_start = self.out.labels.len();
        self.validate_labels(index, raw_labels)?;
        // `validate_labels` just checked these positions in this text.
        let text = self.text;
        let labels = &self.out.labels[labels_start..];
        let fingerprint =
            sightline_model::fingerprint_of(labels.iter().map(|label| label.checked_text(text)));
        for (exemplar_index, message) in exemplar_messages.into_iter().enumerate() {
            let exemplar =
                proto::Exemplar::decode(message).map_err(|e| Error::BadProtobuf(e.to_string()))?;
            match convert_exemplar(&exemplar) {
                Ok(exemplar) => self.out.exemplars.push(exemplar),
                Err(what) => {
                    self.extras.exemplars_dropped += 1;
                    if self.extras.exemplar_drop_reason.is_none() {
                        let described = self.describe(&self.out.labels[labels_start..]);
                        self.extras.exemplar_drop_reason = Some(format!(
                            "series {index} ({described}): exemplar {exemplar_index}: {what}"
                        ));
                    }
                }
            }
        }
        // The lengths fit u32: each entry took at least one byte of the body, whose
        // length `decode_into` checked.
        self.out.spans.push(SeriesSpan {
            fingerprint,
            in_place_start: 0,
            in_place_len: 0,
            in_place_count: 0,
            labels_end: self.out.labels.len() as u32,
            samples_end: self.out.samples.len() as u32,
            exemplars_end: self.out.exemplars.len() as u32,
        });
        Ok(())
    }

    /// Decodes a series in the shape every Prometheus-compatible sender writes, in
    /// one pass: labels first, each `0a L (0a n name 12 v value)` with one-byte
    /// lengths, names non-empty and strictly increasing, values non-empty, all ASCII,
    /// within the limits; then samples in their usual layout; nothing else. Such a
    /// series is valid as it is, and its labels stay in place. False, with nothing
    /// changed, for anything else: the general path then decodes it (and words any
    /// error).
    fn decode_usual_series(&mut self, series: &'a [u8]) -> bool {
        let limits = self.limits;
        // Every length here is below 128: the limits only matter below that.
        if limits.max_label_name_bytes < 127 || limits.max_label_value_bytes < 127 {
            return false;
        }
        let mut rest = series;
        let mut previous_name: &[u8] = &[];
        let mut count = 0usize;
        while let Some((name, value, after)) = split_short_label(rest) {
            if name.is_empty() || value.is_empty() || (count > 0 && !name_less(previous_name, name))
            {
                return false;
            }
            previous_name = name;
            count += 1;
            rest = after;
        }
        let region = &series[..series.len() - rest.len()];
        if count == 0 || count > limits.max_label_names_per_series || !region.is_ascii() {
            return false;
        }
        let samples_start = self.out.samples.len();
        let mut reader = WireReader::new(rest);
        while !reader.rest().is_empty() {
            let sample = reader.next_short_bytes_field(0x12).map(decode_sample);
            let Some(Ok(sample)) = sample else {
                self.out.samples.truncate(samples_start);
                return false;
            };
            self.out.samples.push(sample);
        }
        let region_start = self.offset(region.as_ptr());
        // The lengths fit u32: each entry took at least one byte of the body, whose
        // length `decode_into` checked.
        self.out.spans.push(SeriesSpan {
            fingerprint: sightline_model::fingerprint_of_encoded(region),
            in_place_start: region_start as u32,
            in_place_len: region.len() as u32,
            in_place_count: count as u32,
            labels_end: self.out.labels.len() as u32,
            samples_end: self.out.samples.len() as u32,
            exemplars_end: self.out.exemplars.len() as u32,
        });
        true
    }

    /// Checks one series' labels as Prometheus' write path does and appends the kept
    /// ones (non-empty values), sorted by name, to `self.out.labels`.
    fn validate_labels(&mut self, index: usize, raw_labels: &[RawLabel<'a>]) -> Result<()> {
        let invalid = |description: String, what: String| Error::InvalidSeries {
            index,
            reason: format!("({description}): {what}"),
        };
        let limits = self.limits;
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
        // Label text is nearly always ASCII. When the bytes from the first label's
        // name to the last label's value are (field keys and short lengths are too),
        // every name and value in between is UTF-8: one vectorised scan instead of
        // two short ones per label.
        // Empty names and values are left out: only those may not point into the body.
        let (mut start, mut end) = (usize::MAX, 0);
        for part in raw_labels.iter().flat_map(|&(name, value)| [name, value]) {
            if !part.is_empty() {
                start = start.min(self.offset(part.as_ptr()));
                end = end.max(self.offset(part.as_ptr()) + part.len());
            }
        }
        let all_ascii = start >= end || self.text.get(start..end).is_some_and(<[u8]>::is_ascii);
        let start = self.out.labels.len();
        for (position, &(name, value)) in raw_labels.iter().enumerate() {
            let checked = if all_ascii {
                check_label_lengths(position, name, value, limits)
            } else {
                check_label(position, name, value, limits).map(|_| ())
            };
            if let Err(what) = checked {
                self.out.labels.truncate(start);
                return Err(invalid(describe_raw_labels(raw_labels), what));
            }
            if !value.is_empty() {
                let position = LabelPosition {
                    name_start: self.offset(name.as_ptr()) as u32,
                    name_len: name.len() as u32,
                    value_start: self.offset(value.as_ptr()) as u32,
                    value_len: value.len() as u32,
                };
                self.out.labels.push(position);
            }
        }
        if self.out.labels.len() == start {
            let what = "label set is empty (labels with empty values are dropped)".to_string();
            return Err(invalid(describe_raw_labels(raw_labels), what));
        }
        let text = self.text;
        let labels = &mut self.out.labels[start..];
        // Senders sort already (Prometheus requires it); checking is cheaper than sorting.
        if !labels
            .windows(2)
            .all(|pair| pair[0].name(text) <= pair[1].name(text))
        {
            labels.sort_by(|a, b| a.name(text).cmp(b.name(text)));
        }
        if let Some(pair) = labels
            .windows(2)
            .find(|pair| pair[0].name(text) == pair[1].name(text))
        {
            let what = format!(
                "label name {} appears more than once",
                quote_truncated(pair[0].name(text))
            );
            let described = self.describe(&self.out.labels[start..]);
            self.out.labels.truncate(start);
            return Err(invalid(described, what));
        }
        Ok(())
    }

    /// Where `pointer`, which points into `self.text`, is in it.
    fn offset(&self, pointer: *const u8) -> usize {
        (pointer as usize).wrapping_sub(self.text.as_ptr() as usize)
    }

    /// `{name="value", ...}` of checked labels, for messages.
    fn describe(&self, labels: &[LabelPosition]) -> String {
        let raw: Vec<RawLabel<'_>> = labels
            .iter()
            .map(|l| (l.name(self.text), l.value(self.text)))
            .collect();
        describe_raw_labels(&raw)
    }
}

/// `a < b` for label names, byte by byte: neighbouring names differ in their first
/// bytes, where a loop decides sooner than a `memcmp` call.
#[inline]
fn name_less(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// [`check_label`] without the UTF-8 check, for labels known to be ASCII.
fn check_label_lengths(
    position: usize,
    name: &[u8],
    value: &[u8],
    limits: &DecodeLimits,
) -> std::result::Result<(), String> {
    if name.is_empty() && !value.is_empty() {
        return Err(format!("label name of label {position} is empty"));
    }
    if name.len() > limits.max_label_name_bytes || value.len() > limits.max_label_value_bytes {
        // The full check words the message.
        return check_label(position, name, value, limits).map(|_| ());
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body(series: &[(&str, &str, f64)]) -> Vec<u8> {
        let request = proto::WriteRequest {
            timeseries: series
                .iter()
                .map(|&(name, value, sample)| proto::TimeSeries {
                    labels: vec![
                        proto::Label::new("__name__", name),
                        proto::Label::new("a", value),
                    ],
                    samples: vec![proto::Sample {
                        value: sample,
                        timestamp: 1000,
                    }],
                    exemplars: vec![],
                    histograms: vec![],
                })
                .collect(),
            metadata: vec![],
        };
        super::super::encode_request(&request)
    }

    #[test]
    fn a_reused_scratch_holds_only_the_latest_request() {
        let limits = DecodeLimits::default();
        let pool = ScratchPool::new(1, 1 << 20);
        let mut scratch = pool.take();
        let first = body(&[("up", "x", 1.0), ("up", "y", 2.0)]);
        let view = decode_body(&first, &limits, &mut scratch).unwrap();
        assert_eq!(view.series_count(), 2);
        pool.give(scratch);
        assert!(pool.pooled_bytes() > 0, "kept for reuse");

        let mut scratch = pool.take();
        assert_eq!(pool.pooled_bytes(), 0);
        let second = body(&[("cpu", "ä", 3.0)]);
        let view = decode_body(&second, &limits, &mut scratch).unwrap();
        let request = view.to_write_request();
        assert_eq!(request.series.len(), 1);
        let labels: Vec<(&str, &str)> = request.series[0]
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(labels, [("__name__", "cpu"), ("a", "ä")]);
        assert_eq!(request.series[0].samples[0].value, 3.0);
        // A refused body leaves nothing behind for the next user either.
        assert!(decode_body(&body(&[("x", "", 1.0)])[..3], &limits, &mut scratch).is_err());
        pool.give(scratch);
    }

    #[test]
    fn the_pool_keeps_few_and_small_scratches() {
        let limits = DecodeLimits::default();
        let pool = ScratchPool::new(1, 64 * 1024);
        let (mut a, mut b) = (pool.take(), pool.take());
        decode_body(&body(&[("up", "x", 1.0)]), &limits, &mut a).unwrap();
        decode_body(&body(&[("up", "y", 1.0)]), &limits, &mut b).unwrap();
        pool.give(a);
        let kept = pool.pooled_bytes();
        pool.give(b);
        assert_eq!(pool.pooled_bytes(), kept, "one at most");

        let big = ScratchPool::new(4, 1024);
        let mut scratch = big.take();
        let many: Vec<(&str, &str, f64)> = (0..200).map(|_| ("up", "x", 1.0)).collect();
        decode_body(&body(&many), &limits, &mut scratch).unwrap();
        assert!(scratch.capacity_bytes() > 1024);
        big.give(scratch);
        assert_eq!(big.pooled_bytes(), 0, "grown past the limit: freed");
    }

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
