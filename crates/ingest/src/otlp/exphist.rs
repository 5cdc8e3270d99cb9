//! Exponential histogram → classic cumulative buckets.
//!
//! Prometheus turns OTLP exponential histograms into native histograms; the model has
//! none yet, so we convert them to classic `le` buckets instead:
//!
//! - positive bucket `i` covers `(base^i, base^(i+1)]`, so its `le` is `base^(i+1)`, with
//!   `base = 2^(2^-scale)`;
//! - negative bucket `i` covers `[-base^(i+1), -base^i)`, so its `le` is `-base^i`;
//! - the zero bucket `[-zero_threshold, zero_threshold]` gets `le = zero_threshold`
//!   (emitted when it has counts or negative buckets exist);
//! - while there are more than [`MAX_FINITE_BUCKETS`] finite bounds, both sides are
//!   downscaled (scale − 1: adjacent buckets `2k` and `2k+1` merge into `k`), as an OTel
//!   SDK would;
//! - bounds that overflow to ±∞ or collapse onto the previous bound are merged upward,
//!   so bounds are strictly increasing; the caller adds `+Inf` = the point's count.
//!
//! Consequence worth knowing: when the source changes scale, the set of `le` values of
//! the series changes too.

use opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint;

/// Most finite `le` buckets one converted data point produces.
pub(crate) const MAX_FINITE_BUCKETS: usize = 40;

/// Finest scale we compute bounds at; OTLP allows up to 20.
const MAX_SCALE: i32 = 20;
/// Upper bound on downscaling steps (the index span halves at each step, so ~64
/// steps collapse any i64 span; this only guards against surprises).
const MAX_DOWNSCALE_STEPS: u32 = 80;

/// One side (positive or negative) of an exponential histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Side {
    offset: i64,
    counts: Vec<u64>,
}

impl Side {
    fn from_proto(
        buckets: Option<
            &opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets,
        >,
    ) -> Side {
        match buckets {
            Some(b) => Side {
                offset: i64::from(b.offset),
                counts: b.bucket_counts.clone(),
            },
            None => Side {
                offset: 0,
                counts: Vec::new(),
            },
        }
    }

    /// Halves the resolution: bucket index `i` becomes `i >> 1` (floor division).
    fn downscale(&mut self) {
        if self.counts.is_empty() {
            return;
        }
        let new_offset = self.offset >> 1;
        let last = self.offset + self.counts.len() as i64 - 1;
        let new_len = ((last >> 1) - new_offset + 1) as usize;
        let mut merged = vec![0u64; new_len];
        for (k, count) in self.counts.iter().enumerate() {
            let index = self.offset + k as i64;
            // offset <= index <= last, so new_offset <= index >> 1 <= last >> 1: the slot
            // is within 0..new_len.
            let slot = ((index >> 1) - new_offset) as usize;
            merged[slot] = merged[slot].saturating_add(*count);
        }
        self.offset = new_offset;
        self.counts = merged;
    }
}

/// `2^(index * 2^-scale)`, the boundary between buckets `index - 1` and `index`.
fn boundary(index: i64, scale: i32) -> f64 {
    let exponent = index as f64 * (-f64::from(scale)).exp2();
    exponent.exp2()
}

/// Cumulative `(le, count)` pairs with strictly increasing finite `le`, excluding
/// `+Inf` (which the caller sets to the point's total count).
pub(crate) fn classic_buckets(point: &ExponentialHistogramDataPoint) -> Vec<(f64, u64)> {
    let mut positive = Side::from_proto(point.positive.as_ref());
    let mut negative = Side::from_proto(point.negative.as_ref());
    let mut scale = point.scale;
    let has_zero_bucket = point.zero_count > 0 || !negative.counts.is_empty();
    let finite =
        |p: &Side, n: &Side| p.counts.len() + n.counts.len() + usize::from(has_zero_bucket);
    let mut steps = 0;
    while (scale > MAX_SCALE || finite(&positive, &negative) > MAX_FINITE_BUCKETS)
        && steps < MAX_DOWNSCALE_STEPS
    {
        positive.downscale();
        negative.downscale();
        scale = scale.saturating_sub(1);
        steps += 1;
    }

    let mut out: Vec<(f64, u64)> = Vec::with_capacity(finite(&positive, &negative));
    let mut cumulative = 0u64;
    let mut push = |bound: f64, cumulative: u64| {
        if !bound.is_finite() {
            return;
        }
        match out.last_mut() {
            Some(last) if bound <= last.0 => last.1 = cumulative,
            _ => out.push((bound, cumulative)),
        }
    };
    // Negative buckets, most negative first: the bucket with the largest index.
    for (k, count) in negative.counts.iter().enumerate().rev() {
        cumulative = cumulative.saturating_add(*count);
        push(-boundary(negative.offset + k as i64, scale), cumulative);
    }
    if has_zero_bucket {
        cumulative = cumulative.saturating_add(point.zero_count);
        let threshold = if point.zero_threshold.is_nan() || point.zero_threshold < 0.0 {
            0.0
        } else {
            point.zero_threshold
        };
        push(threshold, cumulative);
    }
    for (k, count) in positive.counts.iter().enumerate() {
        cumulative = cumulative.saturating_add(*count);
        push(boundary(positive.offset + k as i64 + 1, scale), cumulative);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
    use proptest::prelude::*;

    fn point(
        scale: i32,
        zero: u64,
        pos: (i32, Vec<u64>),
        neg: (i32, Vec<u64>),
    ) -> ExponentialHistogramDataPoint {
        let count = zero + pos.1.iter().sum::<u64>() + neg.1.iter().sum::<u64>();
        ExponentialHistogramDataPoint {
            scale,
            zero_count: zero,
            count,
            positive: Some(Buckets {
                offset: pos.0,
                bucket_counts: pos.1,
            }),
            negative: Some(Buckets {
                offset: neg.0,
                bucket_counts: neg.1,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn spec_example_scale_zero() {
        // metrics.json example: scale 0, zero_count 1, positive offset 1 counts [0, 2].
        let p = point(0, 1, (1, vec![0, 2]), (0, vec![]));
        // Buckets 1 → (2, 4], 2 → (4, 8].
        assert_eq!(classic_buckets(&p), vec![(0.0, 1), (4.0, 1), (8.0, 3)]);
    }

    #[test]
    fn negative_and_zero_buckets() {
        let p = point(0, 2, (0, vec![1]), (0, vec![3, 4]));
        // Negative index 1 → [-4, -2) le -2; index 0 → [-2, -1) le -1; zero; positive
        // index 0 → (1, 2].
        assert_eq!(
            classic_buckets(&p),
            vec![(-2.0, 4), (-1.0, 7), (0.0, 9), (2.0, 10)]
        );
    }

    #[test]
    fn downscales_to_the_limit() {
        let p = point(3, 0, (-50, vec![1; 200]), (0, vec![]));
        let buckets = classic_buckets(&p);
        assert!(buckets.len() <= MAX_FINITE_BUCKETS, "{}", buckets.len());
        assert_eq!(buckets.last().map(|b| b.1), Some(200));
    }

    #[test]
    fn absurd_scales_do_not_break() {
        let p = point(
            i32::MAX,
            1,
            (i32::MAX - 3, vec![1, 2, 3]),
            (i32::MIN, vec![4, 5]),
        );
        let buckets = classic_buckets(&p);
        assert!(buckets.len() <= MAX_FINITE_BUCKETS);
        let p = point(-1000, 1, (5, vec![1, 2, 3]), (0, vec![4]));
        let buckets = classic_buckets(&p);
        assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn counts_conserved_and_bounds_increase(
            scale in -10i32..=20,
            zero in 0u64..5,
            pos_offset in -300i32..300,
            pos in proptest::collection::vec(0u64..10, 0..120),
            neg_offset in -300i32..300,
            neg in proptest::collection::vec(0u64..10, 0..60),
        ) {
            let total: u64 = zero + pos.iter().sum::<u64>() + neg.iter().sum::<u64>();
            let p = point(scale, zero, (pos_offset, pos), (neg_offset, neg));
            let buckets = classic_buckets(&p);
            prop_assert!(buckets.len() <= MAX_FINITE_BUCKETS);
            prop_assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
            prop_assert!(buckets.iter().all(|b| b.0.is_finite()));
            // Everything that fell in finite buckets is in the last cumulative count
            // (the rest overflowed into +Inf, which the caller sets to the total).
            prop_assert!(buckets.last().map_or(0, |b| b.1) <= total);
            if scale >= 0 {
                // No overflow possible at these offsets: all counts are finite-bounded.
                prop_assert_eq!(buckets.last().map_or(0, |b| b.1), total);
            }
        }
    }
}
