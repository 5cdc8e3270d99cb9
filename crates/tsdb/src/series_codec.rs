//! The sample encoding of block files: per series a timestamp stream
//! (delta-of-delta zigzag varints) and a value stream (decimal integers with
//! delta-of-delta when every value of the series is an exact decimal, XOR otherwise).
//! Streams of many series are grouped and zstd-compressed by the block writer; zero
//! deltas of regular scrapes then cost almost nothing. Since block format 2 a stream
//! holds one chunk of a series, and a chunk's first timestamp is written relative to
//! the chunk's `min_time` from the block index (its `base`; 0 in format 1).

use crate::encoding::{Reader, put_uvarint, put_varint, zigzag};
use crate::{Error, Result};

const VALUES_DECIMAL: u8 = 0;
const VALUES_XOR: u8 = 1;
/// Largest decimal exponent tried for the decimal value encoding.
const MAX_DECIMAL_EXPONENT: u8 = 9;
/// Integers beyond this are not exact in an f64.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Upper bound on the samples of one series in one block (guards allocations when
/// decoding): a year of 1 ms samples would be far beyond it, real data is far below.
const MAX_SAMPLES_PER_SERIES: usize = 1 << 28;

fn uvarint_len(value: u64) -> usize {
    (64 - value.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Delta (order 1) or delta-of-delta (order 2) of `ints`, as zigzag varints after the
/// first value (written as its difference from `base`); the cheaper order is chosen
/// per stream and written first.
/// `ints` order of an arithmetic sequence: the first integer and the constant delta.
const ORDER_STEADY: u8 = 0;

fn encode_ints(ints: &[i64], base: i64, out: &mut Vec<u8>) {
    let mut cost = [0usize; 2];
    let mut previous_delta = 0i64;
    for pair in ints.windows(2) {
        let delta = pair[1].wrapping_sub(pair[0]);
        cost[0] += uvarint_len(zigzag(delta));
        cost[1] += uvarint_len(zigzag(delta.wrapping_sub(previous_delta)));
        previous_delta = delta;
    }
    let steady = ints.len() > 2
        && ints
            .windows(2)
            .all(|pair| pair[1].wrapping_sub(pair[0]) == ints[1].wrapping_sub(ints[0]));
    if steady {
        // A regular scrape's timestamps, a constant value: two numbers say it all, and
        // decoding writes them out without reading a byte per integer.
        out.push(ORDER_STEADY);
        put_varint(out, ints[0].wrapping_sub(base));
        put_varint(out, ints[1].wrapping_sub(ints[0]));
        return;
    }
    let order: u8 = if cost[0] <= cost[1] { 1 } else { 2 };
    out.push(order);
    let mut previous = 0i64;
    let mut previous_delta = 0i64;
    for (i, &value) in ints.iter().enumerate() {
        if i == 0 {
            put_varint(out, value.wrapping_sub(base));
        } else {
            let delta = value.wrapping_sub(previous);
            match order {
                1 => put_varint(out, delta),
                _ => put_varint(out, delta.wrapping_sub(previous_delta)),
            }
            previous_delta = delta;
        }
        previous = value;
    }
}

/// Appends `count` integers of an `ints` stream to `out` (cleared first).
fn decode_ints(reader: &mut Reader<'_>, count: usize, base: i64, out: &mut Vec<i64>) -> Result<()> {
    out.clear();
    // `count` comes from the block index (checked by the caller); reserving no more
    // than the stream's bytes keeps a corrupt one from over-allocating up front.
    out.reserve(count.min(reader.remaining()));
    if count == 0 {
        return Ok(());
    }
    let order = reader.u8()?;
    if order == ORDER_STEADY {
        let first = base.wrapping_add(reader.varint()?);
        let delta = reader.varint()?;
        let mut value = first;
        for _ in 0..count {
            out.push(value);
            value = value.wrapping_add(delta);
        }
        return Ok(());
    }
    if order != 1 && order != 2 {
        return Err(Error::Corrupt(format!(
            "block stream: unknown delta order {order}"
        )));
    }
    let mut previous = base.wrapping_add(reader.varint()?);
    // Every integer takes at least a byte: a corrupt count cannot over-allocate.
    if count - 1 > reader.remaining() {
        return Err(Error::Corrupt(format!(
            "block stream: {count} integers in {} bytes",
            reader.remaining() + 1
        )));
    }
    out.push(previous);
    out.resize(count, 0);
    let rest = &mut out[1..];
    // One loop per order, so the hot loop has no branch on it.
    if order == 1 {
        reader.varints_into(rest, |delta| {
            previous = previous.wrapping_add(delta);
            previous
        })
    } else {
        let mut delta = 0i64;
        reader.varints_into(rest, |dod| {
            delta = delta.wrapping_add(dod);
            previous = previous.wrapping_add(delta);
            previous
        })
    }
}

/// Timestamp stream of `samples`, the first written relative to `base`.
pub(crate) fn encode_timestamps(samples: &[(i64, f64)], base: i64, out: &mut Vec<u8>) {
    put_uvarint(out, samples.len() as u64);
    let times: Vec<i64> = samples.iter().map(|s| s.0).collect();
    encode_ints(&times, base, out);
}

/// Decodes a timestamp stream of `expected` timestamps (the count the block index
/// gives) into `out` (cleared first); a stream of another count is corrupt.
pub(crate) fn decode_timestamps(
    bytes: &[u8],
    base: i64,
    expected: usize,
    out: &mut Vec<i64>,
) -> Result<()> {
    let mut reader = Reader::new(bytes, "block timestamps");
    let count = reader.len(MAX_SAMPLES_PER_SERIES)?;
    if count != expected {
        return Err(Error::Corrupt(format!(
            "block timestamps: {count} in the stream, {expected} in the index"
        )));
    }
    decode_ints(&mut reader, count, base, out)
}

/// The smallest exponent `k` with every value exactly `m / 10^k` for an integer `m`.
fn decimal_exponent(samples: &[(i64, f64)]) -> Option<u8> {
    'exponent: for k in 0..=MAX_DECIMAL_EXPONENT {
        let scale = 10f64.powi(i32::from(k));
        for &(_, v) in samples {
            let scaled = (v * scale).round();
            if !scaled.is_finite()
                || scaled.abs() >= MAX_EXACT_INTEGER
                || ((scaled as i64) as f64 / scale).to_bits() != v.to_bits()
            {
                continue 'exponent;
            }
        }
        return Some(k);
    }
    None
}

/// Non-finite values (staleness markers, infinities) are stored beside the decimal
/// stream as exceptions so one marker does not force the XOR encoding.
fn is_exception(v: f64) -> bool {
    !v.is_finite()
}

pub(crate) fn encode_values(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    let exceptions = samples.iter().filter(|s| is_exception(s.1)).count();
    let finite: Vec<(i64, f64)> = samples
        .iter()
        .copied()
        .filter(|s| !is_exception(s.1))
        .collect();
    let decimal = if exceptions * 4 <= samples.len() {
        decimal_exponent(&finite)
    } else {
        None
    };
    match decimal {
        Some(k) => {
            out.push(VALUES_DECIMAL);
            out.push(k);
            put_uvarint(out, exceptions as u64);
            let mut last_index = 0usize;
            for (i, s) in samples
                .iter()
                .enumerate()
                .filter(|(_, s)| is_exception(s.1))
            {
                put_uvarint(out, (i - last_index) as u64);
                out.extend_from_slice(&s.1.to_bits().to_le_bytes());
                last_index = i;
            }
            let scale = 10f64.powi(i32::from(k));
            // Exact: checked by decimal_exponent (|scaled| < 2^53). Exceptions repeat
            // the previous integer so they cost a zero delta.
            let mut previous = 0i64;
            let ints: Vec<i64> = samples
                .iter()
                .map(|s| {
                    if !is_exception(s.1) {
                        previous = (s.1 * scale).round() as i64;
                    }
                    previous
                })
                .collect();
            encode_ints(&ints, 0, out);
        }
        None => {
            out.push(VALUES_XOR);
            let mut previous = 0u64;
            for &(_, v) in samples {
                let xor = v.to_bits() ^ previous;
                previous = v.to_bits();
                if xor == 0 {
                    out.push(64);
                } else {
                    let trailing = xor.trailing_zeros();
                    out.push(trailing as u8);
                    put_uvarint(out, xor >> trailing);
                }
            }
        }
    }
}

/// Decodes `count` values into `out` (cleared first); `ints` is scratch space.
pub(crate) fn decode_values(
    bytes: &[u8],
    count: usize,
    ints: &mut Vec<i64>,
    out: &mut Vec<f64>,
) -> Result<()> {
    let mut reader = Reader::new(bytes, "block values");
    out.clear();
    // Every value takes at least one byte of the stream: a corrupt count cannot
    // over-allocate.
    out.reserve(count.min(bytes.len()));
    if count == 0 {
        return Ok(());
    }
    match reader.u8()? {
        VALUES_DECIMAL => {
            let k = reader.u8()?;
            if k > MAX_DECIMAL_EXPONENT {
                return Err(Error::Corrupt(format!(
                    "block values: decimal exponent {k}"
                )));
            }
            let exception_count = reader.len(count)?;
            let mut exceptions = Vec::with_capacity(exception_count);
            let mut index = 0usize;
            for _ in 0..exception_count {
                index = index.saturating_add(reader.len(count)?);
                exceptions.push((index, f64::from_bits(reader.u64_le()?)));
            }
            decode_ints(&mut reader, count, 0, ints)?;
            if k == 0 {
                // Integers (counters, most gauges): no division per value.
                out.extend(ints.iter().map(|&m| m as f64));
            } else {
                let scale = 10f64.powi(i32::from(k));
                out.extend(ints.iter().map(|&m| m as f64 / scale));
            }
            for (index, value) in exceptions {
                match out.get_mut(index) {
                    Some(slot) => *slot = value,
                    None => return Err(Error::Corrupt("block values: exception index".into())),
                }
            }
        }
        VALUES_XOR => {
            let mut previous = 0u64;
            for _ in 0..count {
                let trailing = reader.u8()?;
                let xor = match trailing {
                    64 => 0,
                    0..=63 => reader
                        .uvarint()?
                        .checked_shl(u32::from(trailing))
                        .unwrap_or(0),
                    _ => return Err(Error::Corrupt("block values: bad xor shift".into())),
                };
                previous ^= xor;
                out.push(f64::from_bits(previous));
            }
        }
        kind => {
            return Err(Error::Corrupt(format!(
                "block values: unknown encoding {kind}"
            )));
        }
    }
    Ok(())
}

/// Reusable buffers for decoding chunks (one decode allocates nothing once warm).
#[derive(Debug, Default)]
pub(crate) struct ChunkDecoder {
    times: Vec<i64>,
    ints: Vec<i64>,
    values: Vec<f64>,
}

impl ChunkDecoder {
    /// Decodes one chunk of `count` samples and appends those in `[mint, maxt]` to
    /// `out`. A stream whose count disagrees with `count` is [`Error::Corrupt`].
    pub(crate) fn decode_into(
        &mut self,
        ts_bytes: &[u8],
        value_bytes: &[u8],
        base: i64,
        count: usize,
        (mint, maxt): (i64, i64),
        out: &mut Vec<(i64, f64)>,
    ) -> Result<()> {
        decode_timestamps(ts_bytes, base, count, &mut self.times)?;
        if self.times.len() != count {
            return Err(Error::Corrupt("block chunk: sample count".into()));
        }
        decode_values(value_bytes, count, &mut self.ints, &mut self.values)?;
        if self.values.len() != count {
            return Err(Error::Corrupt("block chunk: value count".into()));
        }
        let start = self.times.partition_point(|&t| t < mint);
        let end = self.times.partition_point(|&t| t <= maxt).max(start);
        out.extend(
            self.times[start..end]
                .iter()
                .copied()
                .zip(self.values[start..end].iter().copied()),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(samples: &[(i64, f64)]) {
        let mut ts = Vec::new();
        let mut vs = Vec::new();
        let base = samples.first().map_or(0, |s| s.0);
        encode_timestamps(samples, base, &mut ts);
        encode_values(samples, &mut vs);
        let (mut times, mut ints, mut values) = (Vec::new(), Vec::new(), Vec::new());
        decode_timestamps(&ts, base, samples.len(), &mut times).unwrap();
        decode_values(&vs, times.len(), &mut ints, &mut values).unwrap();
        assert_eq!(times.len(), samples.len());
        for (i, &(t, v)) in samples.iter().enumerate() {
            assert_eq!(times[i], t);
            assert_eq!(values[i].to_bits(), v.to_bits());
        }
    }

    #[test]
    fn encodings() {
        round_trip(&[]);
        round_trip(&[(1, 0.1), (2, 0.25), (3, 1e6)]);
        round_trip(&[
            (1, f64::NAN),
            (2, -0.0),
            (3, f64::INFINITY),
            (i64::MAX, 1.0 / 3.0),
        ]);
        round_trip(&[(i64::MIN, 1e300), (0, -1e-300), (5, 123_456_789.123)]);
        let counter: Vec<(i64, f64)> = (0..1000)
            .map(|i| (1_700_000_000_000 + i * 15_000, (i * 17) as f64))
            .collect();
        round_trip(&counter);
        let mut out = Vec::new();
        encode_values(&counter, &mut out);
        assert!(out.len() < 1100, "counter values cost {} bytes", out.len());
    }

    #[test]
    fn steady_sequences_take_a_few_bytes_and_read_back() {
        let cases: [Vec<(i64, f64)>; 4] = [
            (0..120)
                .map(|i| (1_700_000_000_000 + i * 15_000, 42.0))
                .collect(),
            (0..3).map(|i| (100 - i * 7, i as f64 * 2.5)).collect(),
            (0..50).map(|i| (i64::MAX - 100 + i, -1.0)).collect(),
            (0..10)
                .map(|i| (i * (i64::MAX / 16), f64::from(i as u8)))
                .collect(),
        ];
        for samples in &cases {
            round_trip(samples);
            let mut ts = Vec::new();
            encode_timestamps(samples, samples[0].0, &mut ts);
            assert_eq!(ts[1], ORDER_STEADY, "{samples:?}");
            assert!(ts.len() <= 1 + 1 + 1 + 10, "{} bytes", ts.len());
        }
        // The stream says 120 timestamps; an index that says otherwise is corrupt.
        let mut ts = Vec::new();
        encode_timestamps(&cases[0], 0, &mut ts);
        let error = decode_timestamps(&ts, 0, 119, &mut Vec::new()).unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{error}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn prop_round_trip(samples in proptest::collection::vec((any::<i64>(), any::<f64>()), 0..50)) {
            round_trip(&samples);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), count in 0usize..100) {
            let (mut times, mut ints, mut values) = (Vec::new(), Vec::new(), Vec::new());
            let _ = decode_timestamps(&bytes, 0, count, &mut times);
            let _ = decode_values(&bytes, count, &mut ints, &mut values);
            let _ = ChunkDecoder::default().decode_into(&bytes, &bytes, 7, count, (0, 100), &mut Vec::new());
        }
    }
}
