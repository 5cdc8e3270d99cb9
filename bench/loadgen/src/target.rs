//! One simulated scrape target: its labels (encoded once when it starts), the
//! current value of each of its series, and how they advance per simulated scrape.
//!
//! Everything random about a target derives from `(seed, slot, generation)`, so the
//! data sent is the same whatever the concurrency or the order targets are visited.

use crate::catalog::{Behavior, FULL_PRECISION, SeriesTemplate};
use crate::encode::encode_labels;

/// SplitMix64: tiny, fast and stable across versions (the bench must replay the same
/// data with the same seed).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn between(&mut self, min: f64, max: f64) -> f64 {
        min + (max - min) * self.unit()
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        // (32 random bits * n) >> 32 is < n.
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// Mixes several numbers into one well-spread seed.
pub(crate) fn mix(parts: &[u64]) -> u64 {
    let mut rng = Rng::new(0x5167_6874_6c69_6e65);
    let mut acc = rng.next_u64();
    for part in parts {
        rng = Rng::new(acc ^ part);
        acc = rng.next_u64();
    }
    acc
}

fn round_to(value: f64, decimals: u8) -> f64 {
    const POWERS: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
    match POWERS.get(usize::from(decimals)) {
        Some(power) if decimals != FULL_PRECISION => (value * power).round() / power,
        _ => value,
    }
}

const REGIONS: [&str; 4] = ["eu-west-1", "us-east-1", "us-west-2", "ap-southeast-1"];
const ENVIRONMENTS: [&str; 5] = ["prod", "prod", "prod", "staging", "dev"];
const ZONES: [&str; 3] = ["a", "b", "c"];

/// The identity labels of the target in `slot` at its `generation`-th incarnation.
/// Only `instance` changes when a target is replaced (churn).
pub(crate) fn target_labels(slot: u32, generation: u32, targets: u32) -> Vec<(String, String)> {
    let region = REGIONS[(slot as usize / 5) % REGIONS.len()];
    let host_id = u64::from(generation) * u64::from(targets.max(1)) + u64::from(slot);
    vec![
        (
            "az".to_owned(),
            format!("{region}{}", ZONES[slot as usize % ZONES.len()]),
        ),
        ("cluster".to_owned(), format!("{region}-k8s-{}", slot / 64)),
        (
            "env".to_owned(),
            ENVIRONMENTS[slot as usize % ENVIRONMENTS.len()].to_owned(),
        ),
        (
            "instance".to_owned(),
            format!("node-{host_id:06}.{region}.internal:9100"),
        ),
        ("job".to_owned(), "node".to_owned()),
        ("region".to_owned(), region.to_owned()),
    ]
}

/// One target's series and their state.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    /// Where in the scrape interval this target is scraped.
    offset_ms: i64,
    rng: Rng,
    /// The encoded labels of every series, back to back.
    labels: Vec<u8>,
    /// End offset in `labels` of each series.
    label_ends: Vec<u32>,
    values: Vec<f64>,
    /// Per-series parameter: counter rate or noise mean.
    params: Vec<f64>,
    /// Whether the first scrape happened.
    started: bool,
    /// Draws of the histogram family's request counts, apart from `rng` so adding a
    /// histogram family leaves every other series' data unchanged.
    load_rng: Rng,
    /// Requests per second this target's histogram family counts (on average).
    request_rate: f64,
}

impl Target {
    pub(crate) fn new(
        catalog: &[SeriesTemplate],
        seed: u64,
        slot: u32,
        generation: u32,
        targets: u32,
        interval_ms: i64,
    ) -> Target {
        let mut rng = Rng::new(mix(&[seed, u64::from(slot), u64::from(generation)]));
        let offset_ms = i64::from(rng.below(u32::try_from(interval_ms.max(1)).unwrap_or(u32::MAX)));
        let own_labels = target_labels(slot, generation, targets);
        let interval_seconds = interval_ms as f64 / 1000.0;
        // A replacement target has just started; the initial fleet has been up a while.
        let uptime_seconds = if generation == 0 {
            rng.between(86_400.0, 60.0 * 86_400.0)
        } else {
            rng.between(30.0, 600.0)
        };

        let mut load_rng = Rng::new(mix(&[
            seed,
            u64::from(slot),
            u64::from(generation),
            0x4849_5354,
        ]));
        let request_rate = load_rng.between(5.0, 50.0);
        let uptime_requests = request_rate * uptime_seconds;

        let mut labels = Vec::with_capacity(catalog.len() * 200);
        let mut label_ends = Vec::with_capacity(catalog.len());
        let mut values = Vec::with_capacity(catalog.len());
        let mut params = Vec::with_capacity(catalog.len());
        let mut merged: Vec<(&str, &str)> = Vec::with_capacity(16);
        for template in catalog {
            merged.clear();
            merged.extend(
                template
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            merged.extend(own_labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            merged.sort_unstable_by(|a, b| a.0.cmp(b.0));
            encode_labels(&mut labels, merged.iter().copied());
            // Labels of one series are a few hundred bytes; a target stays far below 4 GiB.
            label_ends.push(u32::try_from(labels.len()).unwrap_or(u32::MAX));
            let (value, param) = initial_value(
                template.behavior,
                &mut rng,
                uptime_seconds,
                interval_seconds,
                uptime_requests,
            );
            values.push(value);
            params.push(param);
        }
        Target {
            slot,
            generation,
            offset_ms,
            rng,
            labels,
            label_ends,
            values,
            params,
            started: false,
            load_rng,
            request_rate,
        }
    }

    /// The timestamp of this target's scrape in the round starting at `round_start_ms`.
    pub(crate) fn scrape_timestamp_ms(&self, round_start_ms: i64) -> i64 {
        round_start_ms + self.offset_ms
    }

    pub(crate) fn series_count(&self) -> usize {
        self.values.len()
    }

    /// Encoded labels and current value of series `index`.
    pub(crate) fn series(&self, index: usize) -> (&[u8], f64) {
        let start = match index {
            0 => 0,
            _ => self.label_ends[index - 1] as usize,
        };
        let end = self.label_ends[index] as usize;
        (&self.labels[start..end], self.values[index])
    }

    /// Takes one scrape at `timestamp_ms`: the first one reports the initial values,
    /// later ones move every value one scrape forward.
    pub(crate) fn scrape(
        &mut self,
        catalog: &[SeriesTemplate],
        timestamp_ms: i64,
        interval_seconds: f64,
    ) {
        if self.started {
            self.advance(catalog, timestamp_ms, interval_seconds);
        } else {
            self.start(catalog, timestamp_ms);
            self.started = true;
        }
    }

    fn advance(&mut self, catalog: &[SeriesTemplate], timestamp_ms: i64, interval_seconds: f64) {
        let rng = &mut self.rng;
        let requests = self.request_rate * interval_seconds * self.load_rng.between(0.5, 1.5);
        for ((template, value), param) in catalog.iter().zip(&mut self.values).zip(&self.params) {
            *value = next_value(
                template.behavior,
                *value,
                *param,
                rng,
                (timestamp_ms, interval_seconds),
                requests,
            );
        }
    }

    /// Sets values that depend on the scrape time before the first scrape.
    fn start(&mut self, catalog: &[SeriesTemplate], timestamp_ms: i64) {
        for (template, value) in catalog.iter().zip(&mut self.values) {
            if template.behavior == Behavior::WallClock {
                *value = timestamp_ms as f64 / 1000.0;
            }
        }
    }
}

fn initial_value(
    behavior: Behavior,
    rng: &mut Rng,
    uptime_seconds: f64,
    interval_seconds: f64,
    uptime_requests: f64,
) -> (f64, f64) {
    match behavior {
        Behavior::Constant { min, max, decimals } => {
            (round_to(rng.between(min, max), decimals), 0.0)
        }
        Behavior::Counter {
            rate_min,
            rate_max,
            decimals,
        } => {
            let rate = rng.between(rate_min, rate_max);
            (round_to(rate * uptime_seconds, decimals), rate)
        }
        Behavior::Step { step } => ((uptime_seconds / interval_seconds).floor() * step, 0.0),
        Behavior::Rare {
            probability,
            max_step,
        } => {
            let mean_step = (1.0 + f64::from(max_step)) / 2.0;
            let expected = uptime_seconds / interval_seconds * probability * mean_step;
            ((expected * rng.between(0.5, 1.5)).floor(), 0.0)
        }
        Behavior::Walk {
            min,
            max,
            step,
            decimals,
            ..
        } => {
            let steps = ((max - min) / step).floor();
            (
                round_to(min + step * (rng.unit() * steps).floor(), decimals),
                0.0,
            )
        }
        Behavior::Noise { min, max, spread } => {
            let mean = rng.between(min, max);
            (mean * (1.0 + spread * (2.0 * rng.unit() - 1.0)), mean)
        }
        Behavior::WallClock => (0.0, 0.0),
        Behavior::HistogramCount { share } => ((uptime_requests * share).floor(), 0.0),
        Behavior::HistogramSum { share, mean } => {
            (round_to(uptime_requests * share * mean, 3), 0.0)
        }
    }
}

fn next_value(
    behavior: Behavior,
    value: f64,
    param: f64,
    rng: &mut Rng,
    (timestamp_ms, interval_seconds): (i64, f64),
    requests: f64,
) -> f64 {
    match behavior {
        Behavior::Constant { .. } => value,
        Behavior::Counter { decimals, .. } => {
            let increase = param * interval_seconds * rng.between(0.7, 1.3);
            round_to(value + increase, decimals)
        }
        Behavior::Step { step } => value + step,
        Behavior::Rare {
            probability,
            max_step,
        } => {
            if rng.unit() < probability {
                value + 1.0 + f64::from(rng.below(max_step))
            } else {
                value
            }
        }
        Behavior::Walk {
            min,
            max,
            step,
            move_probability,
            decimals,
        } => {
            if rng.unit() >= move_probability {
                return value;
            }
            let steps = f64::from(1 + rng.below(3));
            let moved = if rng.next_u64() & 1 == 0 {
                value + steps * step
            } else {
                value - steps * step
            };
            round_to(moved.clamp(min, max), decimals)
        }
        Behavior::Noise { spread, .. } => param * (1.0 + spread * (2.0 * rng.unit() - 1.0)),
        Behavior::WallClock => timestamp_ms as f64 / 1000.0,
        Behavior::HistogramCount { share } => value + (requests * share).floor(),
        Behavior::HistogramSum { share, mean } => round_to(value + requests * share * mean, 3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use crate::encode::BatchEncoder;
    use crate::encode::tests::decode;

    fn run(target: &mut Target, catalog: &[SeriesTemplate], rounds: usize) -> Vec<Vec<f64>> {
        let mut history = Vec::new();
        for round in 0..rounds {
            let timestamp = target.scrape_timestamp_ms(round as i64 * 15_000);
            target.scrape(catalog, timestamp, 15.0);
            history.push(
                (0..target.series_count())
                    .map(|i| target.series(i).1)
                    .collect(),
            );
        }
        history
    }

    #[test]
    fn same_seed_same_data_and_counters_never_decrease() {
        let catalog = catalog::build(600);
        let mut first = Target::new(&catalog, 7, 3, 0, 100, 15_000);
        let mut second = Target::new(&catalog, 7, 3, 0, 100, 15_000);
        let a = run(&mut first, &catalog, 20);
        let b = run(&mut second, &catalog, 20);
        assert_eq!(a, b);
        for (index, template) in catalog.iter().enumerate() {
            let counter = matches!(
                template.behavior,
                Behavior::Counter { .. } | Behavior::Step { .. } | Behavior::Rare { .. }
            );
            if counter {
                for pair in a.windows(2) {
                    assert!(pair[1][index] >= pair[0][index], "{:?}", template.labels);
                }
            }
        }
        let other = run(
            &mut Target::new(&catalog, 8, 3, 0, 100, 15_000),
            &catalog,
            1,
        );
        assert_ne!(a[0], other[0]);
    }

    #[test]
    fn labels_are_sorted_and_include_target_labels() {
        let catalog = catalog::build(200);
        let target = Target::new(&catalog, 1, 42, 2, 100, 15_000);
        let mut encoder = BatchEncoder::new();
        for index in 0..target.series_count() {
            let (labels, value) = target.series(index);
            encoder.push(labels, value, 1);
        }
        let decoded = decode(&encoder.take_request().unwrap().body);
        assert_eq!(decoded.timeseries.len(), 200);
        for series in &decoded.timeseries {
            let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(names, sorted);
            assert_eq!(names[0], "__name__");
            let instance = series.labels.iter().find(|l| l.name == "instance").unwrap();
            assert_eq!(instance.value, "node-000242.eu-west-1.internal:9100");
            assert!(names.contains(&"job"));
        }
    }

    #[test]
    fn histogram_buckets_stay_cumulative_and_do_not_change_other_series() {
        let plain = catalog::build(120);
        let mut with_histograms = plain.clone();
        with_histograms.extend(catalog::histograms(2));
        let a = run(&mut Target::new(&plain, 5, 1, 0, 10, 60_000), &plain, 30);
        let b = run(
            &mut Target::new(&with_histograms, 5, 1, 0, 10, 60_000),
            &with_histograms,
            30,
        );
        for (row_a, row_b) in a.iter().zip(&b) {
            assert_eq!(row_a[..], row_b[..plain.len()]);
            for handler in row_b[plain.len()..].chunks(14) {
                assert!(handler[..12].windows(2).all(|pair| pair[0] <= pair[1]));
                assert_eq!(handler[11], handler[13], "+Inf bucket equals _count");
            }
        }
        for pair in b.windows(2) {
            assert!(
                pair[0][plain.len()..]
                    .iter()
                    .zip(&pair[1][plain.len()..])
                    .all(|(x, y)| x <= y)
            );
        }
    }

    #[test]
    fn decimals_are_respected() {
        let catalog = catalog::build(100);
        let mut target = Target::new(&catalog, 1, 0, 0, 10, 15_000);
        let history = run(&mut target, &catalog, 5);
        for (index, template) in catalog.iter().enumerate() {
            if let Behavior::Counter { decimals: 2, .. } = template.behavior {
                for row in &history {
                    let cents = row[index] * 100.0;
                    assert!((cents - cents.round()).abs() < 1e-3, "{}", row[index]);
                }
            }
        }
    }
}
