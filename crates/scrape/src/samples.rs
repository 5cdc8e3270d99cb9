//! From one scrape's outcome to the samples to store: target labels (with
//! `honor_labels`), `metric_relabel_configs`, `sample_limit`, `honor_timestamps`,
//! staleness markers and the report series, as Prometheus' scrape loop writes them.

use std::collections::HashSet;

use sightline_ingest::exposition::Exposition;
use sightline_model::{
    Exemplar, Label, Labels, LabelsBuilder, METRIC_NAME_LABEL, STALE_NAN_BITS, Sample, TimeSeries,
    WriteRequest, time,
};
use sightline_pipeline::{LabelLimits, RelabelConfig, relabel};

/// The report series, in the order Prometheus writes them.
pub const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// What a job says about turning scraped samples into stored ones.
#[derive(Debug, Clone, Default)]
pub struct SampleRules {
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    /// 0 = no limit.
    pub sample_limit: usize,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// A series over these fails the scrape, like Prometheus' `label_limit`s.
    pub label_limits: LabelLimits,
}

/// What one target remembers between scrapes: the series it wrote last time, so a
/// series that disappears gets a staleness marker.
#[derive(Debug, Default)]
pub struct SeriesMemory {
    previous: HashSet<Labels>,
    /// Time of the last report series, so end-of-run markers come after it.
    last_report_ms: Option<i64>,
}

/// The figures of one scrape, for the report series and self-metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScrapeSummary {
    pub up: bool,
    pub samples_scraped: usize,
    pub samples_post_relabeling: usize,
    pub series_added: usize,
    /// Why the scrape failed, when it did.
    pub error: Option<String>,
}

fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

fn with_name(target_labels: &Labels, name: &str) -> Labels {
    let mut builder = target_labels.to_builder();
    builder.set(METRIC_NAME_LABEL, name);
    builder.build()
}

fn one_sample(labels: Labels, timestamp_ms: i64, value: f64) -> TimeSeries {
    TimeSeries {
        labels,
        samples: vec![Sample {
            timestamp: time::from_millis(timestamp_ms),
            value,
        }],
        exemplars: Vec::new(),
    }
}

/// Exposed labels plus target labels. With `honor_labels` the exposed value wins;
/// without, the target's wins and a conflicting exposed label is kept as
/// `exported_<name>` (`exported_exported_<name>` if that is taken too).
pub fn merge_target_labels(exposed: &Labels, target: &Labels, honor_labels: bool) -> Labels {
    let mut builder = exposed.to_builder();
    if honor_labels {
        for label in target {
            if exposed.get(&label.name).is_none() {
                builder.set(label.name.clone(), label.value.clone());
            }
        }
        return builder.build();
    }
    let mut conflicts: Vec<Label> = Vec::new();
    for label in target {
        if let Some(value) = exposed.get(&label.name) {
            conflicts.push(Label::new(label.name.clone(), value));
        }
        builder.set(label.name.clone(), label.value.clone());
    }
    conflicts.sort_by_key(|l| l.name.len());
    for conflict in conflicts {
        let mut name = conflict.name;
        loop {
            name = format!("exported_{name}");
            if builder.get(&name).is_none() {
                builder.set(name, conflict.value);
                break;
            }
        }
    }
    builder.build()
}

impl SeriesMemory {
    /// The samples of a successful scrape (or, when `exposition` is an error, of a
    /// failed one) taken at `scrape_ms`, with staleness markers and report series.
    pub fn scrape(
        &mut self,
        rules: &SampleRules,
        target_labels: &Labels,
        exposition: Result<Exposition, String>,
        scrape_ms: i64,
        duration_seconds: f64,
    ) -> (WriteRequest, ScrapeSummary) {
        let mut request = WriteRequest::default();
        let mut summary = ScrapeSummary::default();
        let accepted = exposition.and_then(|exposition| {
            summary.samples_scraped = exposition.samples.len();
            let relabeled = self.relabel(rules, target_labels, exposition.samples, scrape_ms);
            summary.samples_post_relabeling = relabeled.as_ref().map_or(0, |(s, _)| s.len());
            relabeled.map(|(series, tracked)| (series, tracked, exposition.metadata))
        });
        let current: HashSet<Labels> = match accepted {
            Ok((series, current, metadata)) => {
                summary.up = true;
                summary.series_added = current.difference(&self.previous).count();
                request.series = series;
                request.metadata = metadata;
                current
            }
            Err(error) => {
                summary.error = Some(error);
                HashSet::new()
            }
        };
        self.mark_stale(&mut request, |labels| !current.contains(labels), scrape_ms);
        self.previous = current;
        let values = [
            if summary.up { 1.0 } else { 0.0 },
            duration_seconds,
            summary.samples_scraped as f64,
            summary.samples_post_relabeling as f64,
            summary.series_added as f64,
        ];
        for (name, value) in REPORT_SERIES.into_iter().zip(values) {
            request
                .series
                .push(one_sample(with_name(target_labels, name), scrape_ms, value));
        }
        self.last_report_ms = Some(scrape_ms);
        (request, summary)
    }

    /// Staleness markers for every series of the last scrape and for the report
    /// series: the target is gone. `None` when nothing was ever written.
    pub fn end_of_run(&mut self, target_labels: &Labels, now_ms: i64) -> Option<WriteRequest> {
        let last = self.last_report_ms?;
        let at = now_ms.max(last + 1);
        let mut request = WriteRequest::default();
        self.mark_stale(&mut request, |_| true, at);
        for name in REPORT_SERIES {
            request
                .series
                .push(one_sample(with_name(target_labels, name), at, stale_nan()));
        }
        self.previous.clear();
        self.last_report_ms = None;
        Some(request)
    }

    fn mark_stale(
        &self,
        request: &mut WriteRequest,
        is_gone: impl Fn(&Labels) -> bool,
        at_ms: i64,
    ) {
        let mut gone: Vec<&Labels> = self.previous.iter().filter(|l| is_gone(l)).collect();
        gone.sort();
        for labels in gone {
            request
                .series
                .push(one_sample(labels.clone(), at_ms, stale_nan()));
        }
    }

    /// Target labels, metric relabeling, timestamps, exemplars and the sample limit.
    /// Also returns the series whose staleness is tracked: as in Prometheus, those
    /// without an exposed timestamp that is honored.
    fn relabel(
        &self,
        rules: &SampleRules,
        target_labels: &Labels,
        samples: Vec<sightline_ingest::exposition::ParsedSample>,
        scrape_ms: i64,
    ) -> Result<(Vec<TimeSeries>, HashSet<Labels>), String> {
        let mut series = Vec::with_capacity(samples.len());
        let mut tracked = HashSet::with_capacity(samples.len());
        for sample in samples {
            let merged = merge_target_labels(&sample.labels, target_labels, rules.honor_labels);
            let mut builder: LabelsBuilder = merged.to_builder();
            if !relabel::process_builder(&mut builder, &rules.metric_relabel_configs) {
                continue;
            }
            let labels = builder.build();
            rules.label_limits.check(&labels)?;
            if labels.metric_name().is_none() {
                return Err(format!(
                    "__name__ label is missing after metric_relabel_configs: {labels}"
                ));
            }
            let timestamp_ms = match sample.timestamp_ms {
                Some(ts) if rules.honor_timestamps => ts,
                _ => {
                    tracked.insert(labels.clone());
                    scrape_ms
                }
            };
            let exemplars = sample
                .exemplar
                .map(|exemplar| Exemplar {
                    labels: exemplar.labels,
                    timestamp: time::from_millis(exemplar.timestamp_ms.unwrap_or(timestamp_ms)),
                    value: exemplar.value,
                })
                .into_iter()
                .collect();
            let mut one = one_sample(labels, timestamp_ms, sample.value);
            one.exemplars = exemplars;
            series.push(one);
            if rules.sample_limit > 0 && series.len() > rules.sample_limit {
                return Err(format!(
                    "sample limit exceeded: more than {} samples after metric_relabel_configs \
                     (sample_limit)",
                    rules.sample_limit
                ));
            }
        }
        Ok((series, tracked))
    }
}

#[cfg(test)]
mod tests;
