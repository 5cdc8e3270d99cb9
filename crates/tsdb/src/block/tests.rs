use proptest::prelude::*;

use super::writer::{MAX_CHUNK_SAMPLES, chunk_bounds};
use super::*;
use crate::encoding::{put_str, put_uvarint, put_varint};
use crate::series_codec;

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())])
}

fn write_block(dir: &Path, n: usize) -> PathBuf {
    let mut writer = BlockWriter::create(dir, 0, 10_000, 1).unwrap();
    let mut all: Vec<Labels> = (0..n).map(series_labels).collect();
    all.sort();
    for labels in &all {
        let i: i64 = labels.get("i").unwrap().parse().unwrap();
        // A little irregular (a late scrape, values off the line), so streams don't
        // shrink to steady sequences and the block spans several groups.
        let samples: Vec<(i64, f64)> = (0..100)
            .map(|t| {
                let late = i64::from(t % 7 == 5);
                (t * 15 + late, (t * i) as f64 * 0.5 + ((t * i) % 3) as f64)
            })
            .collect();
        writer.add_series(labels, &samples).unwrap();
    }
    writer.finish().unwrap().unwrap()
}

/// A format 1 block as the previous writer made it: one chunk per series, absolute
/// timestamps, a plain index.
fn write_v1_block(path: &Path, series: &[(Labels, Vec<(i64, f64)>)]) {
    let mut ts = Vec::new();
    let mut values = Vec::new();
    let mut lengths = Vec::new();
    for (_, samples) in series {
        let (t0, v0) = (ts.len(), values.len());
        series_codec::encode_timestamps(samples, 0, &mut ts);
        series_codec::encode_values(samples, &mut values);
        lengths.push((ts.len() - t0, values.len() - v0));
    }
    let mut raw = Vec::new();
    put_uvarint(&mut raw, series.len() as u64);
    for (t, v) in &lengths {
        put_uvarint(&mut raw, *t as u64);
        put_uvarint(&mut raw, *v as u64);
    }
    raw.extend_from_slice(&ts);
    raw.extend_from_slice(&values);
    let group = zstd::bulk::compress(&raw, 3).unwrap();
    let mut symbols: Vec<&str> = series
        .iter()
        .flat_map(|(l, _)| l.iter().flat_map(|l| [l.name.as_str(), l.value.as_str()]))
        .collect();
    symbols.sort();
    symbols.dedup();
    let all = series.iter().flat_map(|(_, s)| s.iter());
    let mut index = Vec::new();
    put_varint(&mut index, all.clone().map(|s| s.0).min().unwrap());
    put_varint(&mut index, all.clone().map(|s| s.0).max().unwrap());
    put_varint(&mut index, 0);
    put_varint(&mut index, 1 << 40);
    put_uvarint(&mut index, 1);
    put_uvarint(&mut index, all.count() as u64);
    put_uvarint(&mut index, symbols.len() as u64);
    for s in &symbols {
        put_str(&mut index, s);
    }
    put_uvarint(&mut index, 1);
    put_uvarint(&mut index, HEADER_LEN);
    put_uvarint(&mut index, group.len() as u64);
    put_uvarint(&mut index, raw.len() as u64);
    index.extend_from_slice(&crc32c::crc32c(&group).to_le_bytes());
    put_uvarint(&mut index, series.len() as u64);
    put_uvarint(&mut index, series.len() as u64);
    for (labels, samples) in series {
        put_uvarint(&mut index, labels.len() as u64);
        for label in labels {
            put_uvarint(
                &mut index,
                symbols.binary_search(&&*label.name).unwrap() as u64,
            );
            put_uvarint(
                &mut index,
                symbols.binary_search(&&*label.value).unwrap() as u64,
            );
        }
        put_varint(&mut index, samples[0].0);
        put_varint(&mut index, samples[samples.len() - 1].0);
        put_uvarint(&mut index, samples.len() as u64);
    }
    let mut file = Vec::new();
    file.extend_from_slice(&MAGIC.to_le_bytes());
    file.extend_from_slice(&VERSION_1.to_le_bytes());
    file.extend_from_slice(&group);
    let mut footer = Vec::new();
    footer.extend_from_slice(&(file.len() as u64).to_le_bytes());
    footer.extend_from_slice(&(index.len() as u64).to_le_bytes());
    footer.extend_from_slice(&crc32c::crc32c(&index).to_le_bytes());
    footer.extend_from_slice(&crc32c::crc32c(&footer).to_le_bytes());
    footer.extend_from_slice(&VERSION_1.to_le_bytes());
    footer.extend_from_slice(&MAGIC.to_le_bytes());
    file.extend_from_slice(&index);
    file.extend_from_slice(&footer);
    std::fs::write(path, file).unwrap();
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_block(dir.path(), 3000);
    let block = Block::open(&path).unwrap();
    assert_eq!(block.num_series(), 3000);
    assert!(block.groups.len() > 1, "several groups");
    assert_eq!(block.meta().num_samples, 300_000);
    assert_eq!((block.meta().min_time, block.meta().max_time), (0, 1485));
    let m = crate::Matcher::new(crate::MatchOp::Equal, "i", "17").unwrap();
    let ids = block.index().select(&[m]);
    assert_eq!(ids.len(), 1);
    let id = ids.min().unwrap();
    assert_eq!(block.labels(id).get("i"), Some("17"));
    let samples = block.samples(id, &mut LastGroup::default()).unwrap();
    assert_eq!(samples.len(), 100);
    assert_eq!(samples[3], (45, 3.0 * 17.0 * 0.5));
    let bytes_per_sample = block.file_bytes() as f64 / 300_000.0;
    assert!(bytes_per_sample < 1.0, "{bytes_per_sample} bytes/sample");
}

#[test]
fn format_1_blocks_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.blk");
    let series: Vec<(Labels, Vec<(i64, f64)>)> = (0..3)
        .map(|i| {
            let samples = (0..500)
                .map(|t| (1_700_000_000_000 + t * 15_000, (t * i) as f64 / 4.0))
                .collect();
            (series_labels(i as usize), samples)
        })
        .collect();
    write_v1_block(&path, &series);
    let block = Block::open(&path).unwrap();
    assert_eq!(block.version, VERSION_1);
    for (id, (labels, samples)) in series.iter().enumerate() {
        let id = id as u32;
        assert_eq!(&block.labels(id), labels);
        assert_eq!(
            &block.samples(id, &mut LastGroup::default()).unwrap(),
            samples
        );
        let (mint, maxt) = (samples[100].0, samples[200].0);
        let mut window = Vec::new();
        block
            .samples_in(
                id,
                (mint, maxt),
                &mut ChunkDecoder::default(),
                &mut LastGroup::default(),
                &mut window,
            )
            .unwrap();
        assert_eq!(window, samples[100..=200].to_vec());
    }
}

#[test]
fn chunks_are_even_and_bounded() {
    for len in [1, 2, 119, 240, 241, 479, 480, 481, 3240] {
        let bounds: Vec<(usize, usize)> = chunk_bounds(len).collect();
        assert_eq!(bounds[0].0, 0);
        assert_eq!(bounds.last().unwrap().1, len);
        assert!(bounds.windows(2).all(|w| w[0].1 == w[1].0));
        let sizes: Vec<usize> = bounds.iter().map(|(a, b)| b - a).collect();
        assert!(
            sizes.iter().all(|&s| s > 0 && s <= MAX_CHUNK_SAMPLES),
            "{len}: {sizes:?}"
        );
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        assert_eq!(bounds.len(), len.div_ceil(MAX_CHUNK_SAMPLES));
    }
}

#[test]
fn corruption_is_detected_not_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_block(dir.path(), 50);
    let original = std::fs::read(&path).unwrap();
    for position in (0..original.len()).step_by(7).chain([original.len() - 1]) {
        let mut bytes = original.clone();
        bytes[position] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        match Block::open(&path) {
            Err(Error::Corrupt(_)) => {}
            other => panic!("flip at {position}: {other:?}"),
        }
    }
    std::fs::write(&path, &original[..original.len() / 2]).unwrap();
    assert!(matches!(Block::open(&path), Err(Error::Corrupt(_))));
}

#[test]
fn empty_writer_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let writer = BlockWriter::create(dir.path(), 0, 10, 1).unwrap();
    assert!(writer.finish().unwrap().is_none());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Series of arbitrary lengths (many chunks, uneven gaps, mixed value kinds).
fn arbitrary_series() -> impl Strategy<Value = Vec<Vec<(i64, f64)>>> {
    let series = (0usize..700, 1i64..100_000, any::<u64>()).prop_map(|(len, step, seed)| {
        let mut t = (seed % 1_000_000) as i64 - 500_000;
        (0..len)
            .map(|i| {
                t += 1 + (step * ((seed >> (i % 60)) & 3) as i64) / 2;
                let v = match (seed >> (i % 61)) & 7 {
                    0 => f64::NAN,
                    1 => 1.0 / 3.0 * i as f64,
                    _ => (i as f64) * 0.25 + (seed % 97) as f64,
                };
                (t, v)
            })
            .collect::<Vec<_>>()
    });
    proptest::collection::vec(series, 1..6)
}

fn same_samples(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every window read decodes exactly what filtering the full series gives, and
    /// the no-decode lower bound never exceeds it.
    #[test]
    fn windowed_reads_match_the_full_decode(
        all in arbitrary_series(),
        windows in proptest::collection::vec((any::<u32>(), any::<u32>()), 1..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = BlockWriter::create(dir.path(), -1 << 40, 1 << 40, 1).unwrap();
        let mut labelled: Vec<(Labels, &Vec<(i64, f64)>)> =
            all.iter().enumerate().map(|(i, s)| (series_labels(i), s)).collect();
        labelled.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, samples) in &labelled {
            writer.add_series(labels, samples).unwrap();
        }
        let Some(path) = writer.finish().unwrap() else {
            prop_assert!(all.iter().all(Vec::is_empty));
            return Ok(());
        };
        let block = Block::open(&path).unwrap();
        let mut decoder = ChunkDecoder::default();
        let mut last_group = LastGroup::default();
        let stored: Vec<&(Labels, &Vec<(i64, f64)>)> =
            labelled.iter().filter(|(_, s)| !s.is_empty()).collect();
        prop_assert_eq!(block.num_series(), stored.len());
        for (id, (labels, samples)) in stored.iter().enumerate() {
            let id = id as u32;
            prop_assert_eq!(&block.labels(id), labels);
            prop_assert!(same_samples(&block.samples(id, &mut LastGroup::default()).unwrap(), samples));
            let chunks = block.chunks(id);
            prop_assert_eq!(chunks.len(), samples.len().div_ceil(MAX_CHUNK_SAMPLES));
            let (first, last) = (samples[0].0, samples[samples.len() - 1].0);
            let span = (last - first + 3) as u64;
            for &(a, b) in &windows {
                let mint = first - 1 + (u64::from(a) % span) as i64;
                let maxt = mint + (u64::from(b) % span) as i64;
                let expected: Vec<(i64, f64)> = samples
                    .iter()
                    .copied()
                    .filter(|s| s.0 >= mint && s.0 <= maxt)
                    .collect();
                let mut got = Vec::new();
                block.samples_in(id, (mint, maxt), &mut decoder, &mut last_group, &mut got).unwrap();
                prop_assert!(same_samples(&got, &expected));
                prop_assert!(block.samples_surely_in(id, mint, maxt) <= expected.len() as u64);
                // Chunk granularity: a window in a gap inside a chunk overlaps it.
                prop_assert!(block.has_chunks_in(id, mint, maxt) || expected.is_empty());
            }
        }
    }
}

/// Measures the format on real blocks: `SIGHTLINE_BLOCKS=<dir> cargo test --release
/// -p sightline-tsdb rewrite_blocks -- --ignored --nocapture` rewrites every block of
/// `<dir>` with the current writer and prints bytes per sample before and after.
#[test]
#[ignore]
fn rewrite_blocks_and_compare_bytes() {
    let source = std::env::var("SIGHTLINE_BLOCKS").expect("SIGHTLINE_BLOCKS");
    let out = tempfile::tempdir().unwrap();
    let (mut before, mut after, mut samples) = (0u64, 0u64, 0u64);
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some(BLOCK_EXTENSION) {
            continue;
        }
        let block = Block::open(&path).unwrap();
        let meta = *block.meta();
        let mut writer =
            BlockWriter::create(out.path(), meta.range_start, meta.range_end, meta.level).unwrap();
        for id in 0..block.num_series() as u32 {
            writer
                .add_series(
                    &block.labels(id),
                    &block.samples(id, &mut LastGroup::default()).unwrap(),
                )
                .unwrap();
        }
        let rewritten = Block::open(&writer.finish().unwrap().unwrap()).unwrap();
        assert_eq!(rewritten.meta().num_samples, meta.num_samples);
        println!(
            "{}: {} samples, {:.3} -> {:.3} bytes/sample",
            path.display(),
            meta.num_samples,
            block.file_bytes() as f64 / meta.num_samples as f64,
            rewritten.file_bytes() as f64 / meta.num_samples as f64,
        );
        before += block.file_bytes();
        after += rewritten.file_bytes();
        samples += meta.num_samples;
    }
    println!(
        "total {samples} samples: {before} -> {after} bytes, {:.4} -> {:.4} bytes/sample",
        before as f64 / samples as f64,
        after as f64 / samples as f64
    );
}
