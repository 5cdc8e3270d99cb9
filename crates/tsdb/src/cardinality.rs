//! Cardinality statistics of the head, the figures of Prometheus'
//! `/api/v1/status/tsdb`: series per metric name, distinct values and their bytes per
//! label name, series per label pair, each as a top-N list.
//!
//! Like Prometheus, only the head (the recent, in-memory series) is counted: it is
//! what grows when a label explodes, and counting blocks would mean reading them.

use std::collections::HashMap;

use sightline_model::METRIC_NAME_LABEL;

use crate::Db;

/// Series read from the head per lock hold while counting.
const SERIES_PER_BATCH: usize = 4096;

/// One entry of a top-N list: a name (metric name, label name or `name=value`) and
/// its count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardinalityStat {
    pub name: String,
    pub value: u64,
}

/// Head cardinality: totals and top-N lists, each sorted by value descending (ties
/// by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cardinality {
    pub num_series: u64,
    /// Distinct label name/value pairs.
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    /// Oldest and newest sample time of the head (ms), `None` when it is empty.
    pub time_range: Option<(i64, i64)>,
    pub series_count_by_metric_name: Vec<CardinalityStat>,
    pub label_value_count_by_label_name: Vec<CardinalityStat>,
    /// Bytes of the distinct values of each label name.
    pub memory_in_bytes_by_label_name: Vec<CardinalityStat>,
    /// Series per `name=value` pair.
    pub series_count_by_label_value_pair: Vec<CardinalityStat>,
}

impl Db {
    /// Cardinality of the head with top-`limit` lists. Walks every head series'
    /// labels in batches (the head is locked only while a batch is copied). BLOCKING.
    pub fn cardinality(&self, limit: usize) -> Cardinality {
        // Label name -> value -> series having that pair.
        let mut series_by_pair: HashMap<String, HashMap<String, u64>> = HashMap::new();
        self.head.for_each_series_batch(SERIES_PER_BATCH, |batch| {
            for (_, labels) in batch {
                for label in labels.iter() {
                    let values = match series_by_pair.get_mut(&label.name) {
                        Some(values) => values,
                        None => series_by_pair.entry(label.name.clone()).or_default(),
                    };
                    match values.get_mut(&label.value) {
                        Some(count) => *count += 1,
                        None => {
                            values.insert(label.value.clone(), 1);
                        }
                    }
                }
            }
        });
        let mut num_label_pairs = 0u64;
        let mut value_counts = Vec::with_capacity(series_by_pair.len());
        let mut value_bytes = Vec::with_capacity(series_by_pair.len());
        let mut pair_counts = Vec::new();
        let mut metric_counts = Vec::new();
        for (name, values) in &series_by_pair {
            num_label_pairs += values.len() as u64;
            value_counts.push(stat(name.clone(), values.len() as u64));
            let bytes: usize = values.keys().map(String::len).sum();
            value_bytes.push(stat(name.clone(), bytes as u64));
            for (value, series) in values {
                pair_counts.push(stat(format!("{name}={value}"), *series));
                if name == METRIC_NAME_LABEL {
                    metric_counts.push(stat(value.clone(), *series));
                }
            }
        }
        let counts = self.head.counts();
        Cardinality {
            num_series: counts.series,
            num_label_pairs,
            chunk_count: counts.chunks,
            time_range: self.head.time_range(),
            series_count_by_metric_name: top(metric_counts, limit),
            label_value_count_by_label_name: top(value_counts, limit),
            memory_in_bytes_by_label_name: top(value_bytes, limit),
            series_count_by_label_value_pair: top(pair_counts, limit),
        }
    }
}

fn stat(name: String, value: u64) -> CardinalityStat {
    CardinalityStat { name, value }
}

/// The `limit` largest entries, largest first, ties by name.
fn top(mut stats: Vec<CardinalityStat>, limit: usize) -> Vec<CardinalityStat> {
    stats.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    stats.truncate(limit);
    stats
}

#[cfg(test)]
mod tests {
    use sightline_model::{Labels, Sample, TimeSeries, WriteRequest};

    use super::*;
    use crate::DbOptions;

    fn series(pairs: &[(&str, &str)], t: i64) -> TimeSeries {
        TimeSeries {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: vec![Sample {
                timestamp: t,
                value: 1.0,
            }],
            exemplars: Vec::new(),
        }
    }

    #[test]
    fn counts_the_head_by_name_label_and_pair() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), DbOptions::default()).unwrap();
        assert_eq!(db.cardinality(10), Cardinality::default());
        let t = sightline_model::time::now();
        let request = WriteRequest {
            series: vec![
                series(&[("__name__", "up"), ("job", "api")], t),
                series(&[("__name__", "up"), ("job", "db")], t),
                series(&[("__name__", "http_requests"), ("job", "api")], t),
            ],
            metadata: Vec::new(),
        };
        db.append(&request).unwrap();
        let stats = db.cardinality(2);
        assert_eq!(stats.num_series, 3);
        assert_eq!(stats.num_label_pairs, 4);
        let ms = sightline_model::time::to_millis(t);
        assert_eq!(stats.time_range, Some((ms, ms)));
        let pairs = |list: &[CardinalityStat]| -> Vec<(String, u64)> {
            list.iter().map(|s| (s.name.clone(), s.value)).collect()
        };
        assert_eq!(
            pairs(&stats.series_count_by_metric_name),
            vec![("up".to_string(), 2), ("http_requests".to_string(), 1)]
        );
        assert_eq!(
            pairs(&stats.label_value_count_by_label_name),
            vec![("__name__".to_string(), 2), ("job".to_string(), 2)]
        );
        assert_eq!(
            pairs(&stats.memory_in_bytes_by_label_name),
            vec![("__name__".to_string(), 15), ("job".to_string(), 5)]
        );
        assert_eq!(
            pairs(&stats.series_count_by_label_value_pair),
            vec![("__name__=up".to_string(), 2), ("job=api".to_string(), 2)]
        );
    }
}
