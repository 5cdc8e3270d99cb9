use super::*;
use proptest::prelude::*;

const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
const START_MILLIS: Millis = 1_763_700_000_000;

/// A tiny deterministic generator (splitmix64), so the size checks need no
/// extra dependency and always measure the same series.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Roughly normal (sum of uniforms), mean 0, deviation 1.
    fn next_normal(&mut self) -> f64 {
        let sum: f64 = (0..12)
            .map(|_| (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
            .sum();
        sum - 6.0
    }
}

fn encode(samples: &[(Millis, f64)]) -> XorChunk {
    let mut chunk = XorChunk::new();
    for &(t, v) in samples {
        chunk.append(t, v);
    }
    chunk
}

fn as_bits(samples: &[(Millis, f64)]) -> Vec<(Millis, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

fn assert_round_trip(samples: &[(Millis, f64)]) -> XorChunk {
    let chunk = encode(samples);
    let expected = as_bits(samples);
    assert_eq!(chunk.num_samples(), samples.len());
    assert_eq!(as_bits(&chunk.iter().collect::<Vec<_>>()), expected);
    let decoded = decode(chunk.bytes()).expect("decode of a fresh chunk");
    assert_eq!(as_bits(&decoded), expected);
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        assert_eq!(chunk.min_time(), first.0);
        assert_eq!(chunk.max_time(), last.0);
    }
    chunk
}

/// Strictly increasing timestamps from a start and positive gaps, stopping
/// before `i64` overflows.
fn timestamps_from(start: Millis, gaps: &[u64]) -> Vec<Millis> {
    let mut out = vec![start];
    let mut t = start;
    for &gap in gaps {
        let Some(next) = t.checked_add_unsigned(gap.max(1)) else {
            break;
        };
        t = next;
        out.push(t);
    }
    out
}

fn timestamps() -> impl Strategy<Value = Vec<Millis>> {
    let regular = (any::<i64>(), 1u64..100_000, 0usize..=XorChunk::MAX_SAMPLES)
        .prop_map(|(start, step, n)| timestamps_from(start / 2, &vec![step; n]));
    let jittered = (
        -4_000_000_000_000i64..4_000_000_000_000,
        prop::collection::vec(14_000u64..16_000, 0..XorChunk::MAX_SAMPLES),
    )
        .prop_map(|(start, gaps)| timestamps_from(start, &gaps));
    let irregular = (
        any::<i64>(),
        prop::collection::vec(
            prop_oneof![1u64..10, 1u64..1_000_000, 1u64..1 << 40, any::<u64>(),],
            0..XorChunk::MAX_SAMPLES,
        ),
    )
        .prop_map(|(start, gaps)| timestamps_from(start, &gaps));
    // Anywhere in i64, with gaps up to 2^64 - 1 (from i64::MIN to i64::MAX).
    let anywhere = prop::collection::btree_set(
        prop_oneof![
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0),
            Just(-1)
        ],
        0..64,
    )
    .prop_map(|set| set.into_iter().collect::<Vec<_>>());
    prop_oneof![regular, jittered, irregular, anywhere]
}

fn special_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::from_bits(0x7ff8_0000_0000_0001)),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(f64::EPSILON),
    ]
}

/// `n` values of one of several kinds of series.
fn values(n: usize) -> impl Strategy<Value = Vec<f64>> {
    let random_bits = prop::collection::vec(any::<u64>().prop_map(f64::from_bits), n);
    let mixed = prop::collection::vec(prop_oneof![special_value(), any::<f64>(), -1e6f64..1e6], n);
    let constant = prop_oneof![special_value(), any::<f64>()].prop_map(move |v| vec![v; n]);
    let counter = (0f64..1e9, prop::collection::vec(0u32..1000, n)).prop_map(|(start, steps)| {
        steps
            .iter()
            .scan(start.floor(), |total, &step| {
                *total += f64::from(step);
                Some(*total)
            })
            .collect()
    });
    let gauge =
        (-1e4f64..1e4, prop::collection::vec(-500i32..500, n)).prop_map(|(start, steps)| {
            steps
                .iter()
                .scan(start, |level, &step| {
                    *level = ((*level + f64::from(step) / 100.0) * 100.0).round() / 100.0;
                    Some(*level)
                })
                .collect()
        });
    prop_oneof![random_bits, mixed, constant, counter, gauge]
}

fn series() -> impl Strategy<Value = Vec<(Millis, f64)>> {
    timestamps().prop_flat_map(|ts| {
        let n = ts.len();
        values(n).prop_map(move |vs| ts.iter().copied().zip(vs).collect::<Vec<_>>())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn round_trips_any_series(samples in series()) {
        assert_round_trip(&samples);
    }

    #[test]
    fn every_prefix_is_a_complete_encoding(samples in series()) {
        let mut chunk = XorChunk::new();
        for (index, &(t, v)) in samples.iter().enumerate() {
            chunk.append(t, v);
            let decoded = decode(chunk.bytes()).expect("decode of an open chunk");
            prop_assert_eq!(as_bits(&decoded), as_bits(&samples[..=index]));
        }
    }

    #[test]
    fn reopened_chunk_keeps_appending(samples in series(), split in any::<prop::sample::Index>()) {
        let at = if samples.is_empty() { 0 } else { split.index(samples.len() + 1) };
        let first = encode(&samples[..at]);
        // Trailing garbage after the last sample is ignored and dropped.
        let mut stored = first.bytes().to_vec();
        stored.extend_from_slice(&[0xa5, 0xff]);
        let mut reopened = XorChunk::from_bytes(&stored).expect("reopen");
        prop_assert_eq!(reopened.bytes(), first.bytes());
        prop_assert_eq!(reopened.num_samples(), at);
        for &(t, v) in &samples[at..] {
            reopened.append(t, v);
        }
        // Appending after a reopen writes exactly what one pass would have.
        let whole = encode(&samples);
        prop_assert_eq!(reopened.bytes(), whole.bytes());
        prop_assert_eq!(reopened.min_time(), whole.min_time());
        prop_assert_eq!(reopened.max_time(), whole.max_time());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check_untrusted(&bytes);
    }

    #[test]
    fn truncated_encodings_are_errors(samples in series()) {
        let chunk = encode(&samples);
        let bytes = chunk.bytes();
        for len in 0..bytes.len() {
            let truncated = &bytes[..len];
            check_untrusted(truncated);
            match decode(truncated) {
                // A cut inside the unused bits of the last byte loses nothing.
                Ok(decoded) => prop_assert_eq!(as_bits(&decoded), as_bits(&samples)),
                Err(Error::Corrupt(_)) => {}
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }
    }

    #[test]
    fn mutated_encodings_never_panic(
        samples in series(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
        count in any::<u16>(),
        overwrite_count in any::<bool>(),
    ) {
        let mut bytes = encode(&samples).bytes().to_vec();
        for (index, bit) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        if overwrite_count {
            bytes[..2].copy_from_slice(&count.to_be_bytes());
        }
        check_untrusted(&bytes);
    }
}

/// Whatever the bytes: no panic, decode and the iterator agree, and what
/// decodes is strictly increasing.
fn check_untrusted(bytes: &[u8]) {
    let mut iter = ChunkIter::new(bytes);
    let iterated: Vec<_> = iter.by_ref().collect();
    assert!(iterated.windows(2).all(|pair| pair[0].0 < pair[1].0));
    match decode(bytes) {
        Ok(decoded) => {
            assert!(iter.corruption().is_none());
            assert_eq!(decoded.len(), iter.num_samples());
            assert_eq!(as_bits(&decoded), as_bits(&iterated));
        }
        Err(Error::Corrupt(message)) => {
            assert!(iter.corruption().is_some(), "{message}");
            assert!(bytes.len() < 2 || iterated.len() < iter.num_samples());
        }
        Err(other) => panic!("unexpected error {other}"),
    }
    if let Ok(mut chunk) = XorChunk::from_bytes(bytes) {
        assert_eq!(
            as_bits(&chunk.iter().collect::<Vec<_>>()),
            as_bits(&iterated)
        );
        let next_t = if chunk.num_samples() == 0 {
            Some(0)
        } else {
            chunk.max_time().checked_add(1)
        };
        if let Some(t) = next_t
            && chunk.num_samples() < usize::from(u16::MAX)
        {
            chunk.append(t, 1.5);
            let mut expected = as_bits(&iterated);
            expected.push((t, 1.5f64.to_bits()));
            assert_eq!(as_bits(&decode(chunk.bytes()).expect("reopened")), expected);
        }
    }
}

#[test]
fn empty_chunk_encodes_to_a_header() {
    let chunk = XorChunk::new();
    assert_eq!(chunk.bytes(), &[0, 0]);
    assert_eq!(chunk.iter().count(), 0);
    assert!(decode(chunk.bytes()).expect("empty").is_empty());
    assert!(XorChunk::default().bytes() == chunk.bytes());
}

#[test]
fn short_or_overcounted_input_is_corrupt() {
    for bytes in [&[][..], &[0][..], &[0, 1][..], &[0xff, 0xff, 1, 2, 3][..]] {
        assert!(matches!(decode(bytes), Err(Error::Corrupt(_))), "{bytes:?}");
        assert!(XorChunk::from_bytes(bytes).is_err());
    }
    let mut bytes = encode(&[(1, 1.0), (2, 2.0), (3, 3.0)]).bytes().to_vec();
    bytes[1] = 200;
    let error = decode(&bytes).expect_err("count larger than data");
    assert!(error.to_string().contains("read 3 of 200"), "{error}");
}

#[test]
fn extreme_timestamps_and_values_round_trip() {
    let stale = f64::from_bits(STALE_NAN_BITS);
    assert_round_trip(&[
        (i64::MIN, stale),
        (i64::MIN + 1, -0.0),
        (i64::MAX - 1, f64::INFINITY),
        (i64::MAX, f64::NEG_INFINITY),
    ]);
    assert_round_trip(&[(i64::MIN, 0.0), (i64::MAX, stale)]);
    assert_round_trip(&[
        (-5, 1.0),
        (-4, stale),
        (0, 1.0),
        (1 << 62, stale),
        (i64::MAX, 0.0),
    ]);
    // Deltas of delta at every bucket edge.
    let mut samples = vec![(0, 0.0), (1_000, 0.0)];
    let mut t: Millis = 1_000;
    let mut delta: i64 = 1_000_000_000;
    for dod in [
        0,
        1 << 13,
        -((1 << 13) - 1),
        (1 << 13) + 1,
        -(1 << 13),
        1 << 16,
        -((1 << 16) - 1),
        (1 << 16) + 1,
        1 << 19,
        -((1 << 19) - 1),
        (1 << 19) + 1,
        -(1 << 19),
        1 << 40,
        -(1 << 39),
    ] {
        delta += dod;
        t += delta;
        samples.push((t, f64::from(dod as i32)));
    }
    assert_round_trip(&samples);
}

#[test]
fn stale_markers_between_samples_are_bit_exact() {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let samples: Vec<_> = (0..200)
        .map(|i| {
            let v = if i % 7 == 3 {
                stale
            } else {
                f64::from(i) * 0.25
            };
            (START_MILLIS + i64::from(i) * 15_000, v)
        })
        .collect();
    let chunk = assert_round_trip(&samples);
    let stale_count = chunk
        .iter()
        .filter(|(_, v)| v.to_bits() == STALE_NAN_BITS)
        .count();
    assert_eq!(
        stale_count,
        samples.iter().filter(|(_, v)| v.is_nan()).count()
    );
}

#[test]
fn header_counts_up_to_its_limit() {
    let mut chunk = XorChunk::new();
    for i in 0..u16::MAX {
        chunk.append(i64::from(i), 1.0);
    }
    assert_eq!(chunk.num_samples(), usize::from(u16::MAX));
    assert_eq!(
        decode(chunk.bytes()).expect("full header").len(),
        usize::from(u16::MAX)
    );
}

/// Bytes a sample of a full chunk, header included.
fn bytes_per_sample(values: impl Fn(usize) -> f64) -> f64 {
    let mut chunk = XorChunk::new();
    for i in 0..XorChunk::MAX_SAMPLES {
        chunk.append(START_MILLIS + 15_000 * i as i64, values(i));
    }
    assert_eq!(
        decode(chunk.bytes()).expect("decode").len(),
        XorChunk::MAX_SAMPLES
    );
    chunk.encoded_len() as f64 / XorChunk::MAX_SAMPLES as f64
}

fn counter_series() -> Vec<f64> {
    let mut rng = SplitMix(7);
    let mut total = 1_000.0;
    (0..XorChunk::MAX_SAMPLES)
        .map(|_| {
            total += (rng.next_u64() % 10) as f64;
            total
        })
        .collect()
}

fn gauge_series() -> Vec<f64> {
    let mut rng = SplitMix(11);
    let mut level: f64 = 50.0;
    (0..XorChunk::MAX_SAMPLES)
        .map(|_| {
            level = ((level + rng.next_normal()) * 100.0).round() / 100.0;
            level
        })
        .collect()
}

#[test]
fn size_of_typical_series() {
    let counter = counter_series();
    let counter_size = bytes_per_sample(|i| counter[i]);
    let gauge = gauge_series();
    let gauge_size = bytes_per_sample(|i| gauge[i]);
    let constant_size = bytes_per_sample(|_| 42.0);
    println!(
        "bytes/sample over {} samples at 15s: counter {counter_size:.3}, \
         gauge (2 decimals) {gauge_size:.3}, constant {constant_size:.3}",
        XorChunk::MAX_SAMPLES
    );
    assert!(counter_size < 2.0, "counter {counter_size}");
    // The floor is 2 bits a sample plus an 18-byte head (count, first
    // timestamp and value, first delta): (18 + 118 / 4) / 120 = 0.40.
    assert!(constant_size < 0.41, "constant {constant_size}");
    assert!(gauge_size < 8.0, "gauge {gauge_size}");
}

#[test]
fn constant_series_costs_two_bits_a_sample_after_the_head() {
    let mut chunk = XorChunk::new();
    for i in 0..2 {
        chunk.append(START_MILLIS + 15_000 * i, 42.0);
    }
    let head = chunk.encoded_len();
    for i in 2..XorChunk::MAX_SAMPLES as i64 {
        chunk.append(START_MILLIS + 15_000 * i, 42.0);
    }
    let body_bits = (chunk.encoded_len() - head) * 8;
    assert!(
        body_bits <= 2 * (XorChunk::MAX_SAMPLES - 2) + 8,
        "{body_bits}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn bit_fields_round_trip(fields in prop::collection::vec((any::<u64>(), 0u32..=64), 0..200)) {
        let (mut bytes, mut free_bits) = (Vec::new(), 0);
        let mut writer = bstream::BitWriter { bytes: &mut bytes, free_bits: &mut free_bits };
        for &(value, width) in &fields {
            writer.write_bits(value, width);
        }
        let total_bits: usize = fields.iter().map(|&(_, width)| width as usize).sum();
        prop_assert_eq!(bytes.len(), total_bits.div_ceil(8));
        let mut reader = bstream::BitReader::new(&bytes, 0);
        for &(value, width) in &fields {
            let mask = if width == 64 { u64::MAX } else { (1u64 << width) - 1 };
            prop_assert_eq!(reader.read_bits(width), Ok(value & mask));
        }
        prop_assert_eq!(reader.position(), total_bits);
        prop_assert!(reader.read_bits(8 - (total_bits % 8) as u32 + 1).is_err());
    }

    #[test]
    fn varints_round_trip(values in prop::collection::vec(any::<i64>(), 0..50)) {
        let (mut bytes, mut free_bits) = (Vec::new(), 0);
        let mut writer = bstream::BitWriter { bytes: &mut bytes, free_bits: &mut free_bits };
        writer.write_bit(true);
        for &value in &values {
            writer.write_varint(value);
            writer.write_uvarint(value as u64);
        }
        let mut reader = bstream::BitReader::new(&bytes, 1);
        for &value in &values {
            prop_assert_eq!(reader.read_varint(), Ok(value));
            prop_assert_eq!(reader.read_uvarint(), Ok(value as u64));
        }
    }
}

#[test]
fn a_successor_gets_the_bytes_its_predecessor_took() {
    let fill = |chunk: &mut XorChunk, start: Millis, values: &dyn Fn(usize) -> f64| {
        for i in 0..XorChunk::MAX_SAMPLES {
            chunk.append(start + 15_000 * i as i64, values(i));
        }
    };
    let next_start = START_MILLIS + 15_000 * XorChunk::MAX_SAMPLES as i64;

    // A constant series takes ~50 bytes a chunk: its next chunk is allocated at
    // that size, and never grows.
    let mut constant = XorChunk::new();
    fill(&mut constant, START_MILLIS, &|_| 42.0);
    let mut next = constant.successor();
    assert_eq!(next.heap_bytes(), constant.encoded_len());
    fill(&mut next, next_start, &|_| 42.0);
    assert_eq!(next.encoded_len(), constant.encoded_len());
    assert_eq!(next.heap_bytes(), constant.encoded_len(), "grew");

    // One that needs more than a new chunk's capacity starts there and grows.
    let gauge = gauge_series();
    let mut noisy = XorChunk::new();
    fill(&mut noisy, START_MILLIS, &|i| gauge[i]);
    assert!(noisy.encoded_len() > XorChunk::new().heap_bytes());
    assert_eq!(noisy.successor().heap_bytes(), XorChunk::new().heap_bytes());

    // A chunk cut early (at a block boundary) is scaled to a full one.
    let mut short = XorChunk::new();
    for i in 0..XorChunk::MAX_SAMPLES / 2 {
        short.append(START_MILLIS + 15_000 * i as i64, 42.0);
    }
    assert_eq!(short.successor().heap_bytes(), 2 * short.encoded_len());
}
