//! The OTLP → model converter, following Prometheus'
//! `storage/remote/otlptranslator/prometheusremotewrite` (`metrics_to_prw.go`,
//! `helper.go`, `number_data_points.go`).

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar as OtlpExemplar, ExponentialHistogramDataPoint,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, SummaryDataPoint, exemplar,
    metric::Data, number_data_point,
};
use sightline_model::{
    Exemplar, Label, Labels, METRIC_NAME_LABEL, MetricMetadata, MetricType, STALE_NAN_BITS, Sample,
    TimeSeries, Timestamp, WriteRequest, time::NANOS_PER_SECOND,
};

use super::Translation;
use super::exphist;
use super::names::{self, NameKind};
use super::values::{any_value_string, format_float};

/// How many distinct drop reasons a [`Translation`] keeps.
const MAX_REASONS: usize = 8;
/// `target_info` gets a sample every half lookback delta (Prometheus: 5m / 2) between
/// the resource's earliest and latest data point.
const TARGET_INFO_INTERVAL: Timestamp = 150 * NANOS_PER_SECOND;
/// Cap on `target_info` samples per resource (a data point at time 0 next to one at
/// "now" would otherwise ask for millions).
const MAX_TARGET_INFO_SAMPLES: i64 = 64;
/// OpenMetrics' limit on exemplar label text; filtered attributes that would pass it are
/// left out (trace and span ids are always kept).
const MAX_EXEMPLAR_RUNES: usize = 128;
/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
const FLAG_NO_RECORDED_VALUE: u32 = 1;

const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";

pub(crate) fn translate(
    request: &ExportMetricsServiceRequest,
    options: &super::TranslateOptions,
) -> Translation {
    let mut converter = Converter {
        promote_scope_metadata: options.promote_scope_metadata,
        ..Converter::default()
    };
    for resource_metrics in &request.resource_metrics {
        converter.resource(resource_metrics);
    }
    Translation {
        request: WriteRequest {
            series: converter.series,
            metadata: converter.metadata,
        },
        dropped_data_points: converter.dropped,
        dropped_reasons: converter.reasons,
        dropped_exemplars: converter.dropped_exemplars,
    }
}

/// Labels every series of one resource and scope shares.
#[derive(Debug)]
struct Context<'a> {
    job: Option<String>,
    instance: Option<String>,
    scope_name: &'a str,
    scope_version: &'a str,
}

#[derive(Debug, Default)]
struct Converter {
    /// Add `otel_scope_name`/`otel_scope_version` labels (Prometheus'
    /// `otlp.promote_scope_metadata`, off by default there too).
    promote_scope_metadata: bool,
    series: Vec<TimeSeries>,
    /// Label fingerprint → indexes into `series` (more than one on a hash collision).
    by_fingerprint: HashMap<u64, Vec<usize>>,
    metadata: Vec<MetricMetadata>,
    families: HashSet<String>,
    dropped: u64,
    reasons: Vec<String>,
    dropped_exemplars: u64,
}

impl Converter {
    /// The exemplars that can be kept; the others (ids too long) are counted.
    fn exemplars(&mut self, exemplars: &[OtlpExemplar]) -> Vec<Exemplar> {
        let mut kept = Vec::with_capacity(exemplars.len());
        for exemplar in exemplars {
            match convert_exemplar(exemplar) {
                ExemplarOutcome::Kept(exemplar) => kept.push(exemplar),
                ExemplarOutcome::NoValue => {}
                ExemplarOutcome::TooLong => {
                    self.dropped_exemplars = self.dropped_exemplars.saturating_add(1);
                }
            }
        }
        kept
    }

    fn drop_points(&mut self, count: u64, reason: String) {
        self.dropped = self.dropped.saturating_add(count);
        if self.reasons.len() < MAX_REASONS && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    /// Appends `sample` to the series with `labels`, creating it; returns its index.
    fn add_sample(&mut self, labels: Labels, sample: Sample) -> usize {
        let series = &mut self.series;
        let candidates = self.by_fingerprint.entry(labels.fingerprint()).or_default();
        if let Some(&index) = candidates.iter().find(|&&i| series[i].labels == labels) {
            series[index].samples.push(sample);
            return index;
        }
        let index = series.len();
        candidates.push(index);
        series.push(TimeSeries {
            labels,
            samples: vec![sample],
            exemplars: Vec::new(),
        });
        index
    }

    fn resource(&mut self, resource_metrics: &ResourceMetrics) {
        let attributes: &[KeyValue] = resource_metrics
            .resource
            .as_ref()
            .map_or(&[], |r| r.attributes.as_slice());
        let service_name = find_attribute(attributes, SERVICE_NAME);
        let job = service_name.map(|name| match find_attribute(attributes, SERVICE_NAMESPACE) {
            Some(namespace) => format!("{}/{}", value_string(namespace), value_string(name)),
            None => value_string(name),
        });
        let instance = find_attribute(attributes, SERVICE_INSTANCE_ID).map(value_string);

        let mut time_range: Option<(Timestamp, Timestamp)> = None;
        for scope_metrics in &resource_metrics.scope_metrics {
            let scope = scope_metrics.scope.as_ref();
            let context = Context {
                job: job.clone(),
                instance: instance.clone(),
                scope_name: scope
                    .filter(|_| self.promote_scope_metadata)
                    .map_or("", |s| s.name.as_str()),
                scope_version: scope
                    .filter(|_| self.promote_scope_metadata)
                    .map_or("", |s| s.version.as_str()),
            };
            for metric in &scope_metrics.metrics {
                for timestamp in point_timestamps(metric) {
                    time_range = Some(match time_range {
                        Some((lo, hi)) => (lo.min(timestamp), hi.max(timestamp)),
                        None => (timestamp, timestamp),
                    });
                }
                self.metric(&context, metric);
            }
        }
        if let Some((earliest, latest)) = time_range {
            self.target_info(attributes, job, instance, earliest, latest);
        }
    }

    /// `target_info` 1, carrying the resource attributes other than `service.*`
    /// identifiers, only when there are some and `job` or `instance` exists.
    fn target_info(
        &mut self,
        attributes: &[KeyValue],
        job: Option<String>,
        instance: Option<String>,
        earliest: Timestamp,
        latest: Timestamp,
    ) {
        let identifying = [SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID];
        let others: Vec<&KeyValue> = attributes
            .iter()
            .filter(|kv| !identifying.contains(&kv.key.as_str()))
            .collect();
        if others.is_empty() || (job.is_none() && instance.is_none()) {
            return;
        }
        let Ok(mut labels) = attribute_labels(others.into_iter()) else {
            return;
        };
        upsert(&mut labels, "job", job.unwrap_or_default());
        upsert(&mut labels, "instance", instance.unwrap_or_default());
        upsert(&mut labels, METRIC_NAME_LABEL, "target_info".to_string());
        let labels = finish(labels);
        let span = latest.saturating_sub(earliest);
        let start = if span / TARGET_INFO_INTERVAL > MAX_TARGET_INFO_SAMPLES {
            latest - MAX_TARGET_INFO_SAMPLES * TARGET_INFO_INTERVAL
        } else {
            earliest
        };
        let mut timestamp = start;
        while timestamp < latest {
            self.add_sample(
                labels.clone(),
                Sample {
                    timestamp,
                    value: 1.0,
                },
            );
            timestamp = timestamp.saturating_add(TARGET_INFO_INTERVAL);
        }
        self.add_sample(
            labels,
            Sample {
                timestamp: latest,
                value: 1.0,
            },
        );
    }

    fn metric(&mut self, context: &Context<'_>, metric: &Metric) {
        let Some(data) = &metric.data else {
            self.drop_points(0, format!("metric {:?} has no data", metric.name));
            return;
        };
        let points = point_count(data);
        if points == 0 {
            return;
        }
        let (kind, metric_type, temporality) = match data {
            Data::Gauge(_) => (NameKind::Gauge, MetricType::Gauge, None),
            Data::Sum(sum) if sum.is_monotonic => (
                NameKind::MonotonicCounter,
                MetricType::Counter,
                Some(sum.aggregation_temporality),
            ),
            Data::Sum(sum) => (
                NameKind::NonMonotonicCounter,
                MetricType::Gauge,
                Some(sum.aggregation_temporality),
            ),
            Data::Histogram(h) => (
                NameKind::Histogram,
                MetricType::Histogram,
                Some(h.aggregation_temporality),
            ),
            Data::ExponentialHistogram(h) => (
                NameKind::ExponentialHistogram,
                MetricType::Histogram,
                Some(h.aggregation_temporality),
            ),
            Data::Summary(_) => (NameKind::Summary, MetricType::Summary, None),
        };
        if let Some(temporality) = temporality
            && temporality != AggregationTemporality::Cumulative as i32
        {
            let what = if temporality == AggregationTemporality::Delta as i32 {
                "delta temporality"
            } else {
                "unspecified temporality"
            };
            self.drop_points(
                points,
                format!(
                    "metric {:?} has {what}; only cumulative temporality is accepted",
                    metric.name
                ),
            );
            return;
        }
        let Some(family) = names::metric_name(&metric.name, &metric.unit, kind) else {
            self.drop_points(
                points,
                format!(
                    "metric name {:?} does not translate to a valid Prometheus name",
                    metric.name
                ),
            );
            return;
        };
        if self.families.insert(family.clone()) {
            self.metadata.push(MetricMetadata {
                metric_family_name: family.clone(),
                metric_type,
                help: metric.description.clone(),
                unit: names::unit_name(&metric.unit),
            });
        }
        match data {
            Data::Gauge(gauge) => {
                for point in &gauge.data_points {
                    self.number_point(context, &metric.name, &family, point, false);
                }
            }
            Data::Sum(sum) => {
                for point in &sum.data_points {
                    self.number_point(context, &metric.name, &family, point, true);
                }
            }
            Data::Histogram(histogram) => {
                for point in &histogram.data_points {
                    self.histogram_point(context, &metric.name, &family, point);
                }
            }
            Data::ExponentialHistogram(histogram) => {
                for point in &histogram.data_points {
                    self.exponential_point(context, &metric.name, &family, point);
                }
            }
            Data::Summary(summary) => {
                for point in &summary.data_points {
                    self.summary_point(context, &metric.name, &family, point);
                }
            }
        }
    }

    /// The shared labels of one data point, or drops it (counted) and returns `None`.
    fn point_labels(
        &mut self,
        context: &Context<'_>,
        metric_name: &str,
        attributes: &[KeyValue],
    ) -> Option<Vec<Label>> {
        match base_labels(context, attributes) {
            Ok(labels) => Some(labels),
            Err(key) => {
                self.drop_points(
                    1,
                    format!(
                        "attribute {key:?} of metric {metric_name:?} does not translate to a valid label name"
                    ),
                );
                None
            }
        }
    }

    fn number_point(
        &mut self,
        context: &Context<'_>,
        metric_name: &str,
        family: &str,
        point: &NumberDataPoint,
        with_exemplars: bool,
    ) {
        let value = match point.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            None => {
                self.drop_points(
                    1,
                    format!("a data point of metric {metric_name:?} has no value"),
                );
                return;
            }
        };
        let Some(base) = self.point_labels(context, metric_name, &point.attributes) else {
            return;
        };
        let value = stale_or(point.flags, value);
        let labels = with_labels(&base, &[(METRIC_NAME_LABEL, family)]);
        let timestamp = nanos(point.time_unix_nano);
        let index = self.add_sample(labels, Sample { timestamp, value });
        if with_exemplars {
            let exemplars = self.exemplars(&point.exemplars);
            self.series[index].exemplars.extend(exemplars);
        }
    }

    fn histogram_point(
        &mut self,
        context: &Context<'_>,
        metric_name: &str,
        family: &str,
        point: &HistogramDataPoint,
    ) {
        let Some(base) = self.point_labels(context, metric_name, &point.attributes) else {
            return;
        };
        let mut buckets = Vec::with_capacity(point.explicit_bounds.len());
        let mut cumulative = 0u64;
        for (bound, count) in point.explicit_bounds.iter().zip(&point.bucket_counts) {
            cumulative = cumulative.saturating_add(*count);
            // Non-finite bounds fold into +Inf; a repeated bound (invalid OTLP) folds
            // into the previous bucket rather than giving one series two samples.
            match buckets.last_mut() {
                _ if !bound.is_finite() => {}
                Some((last, last_count)) if *last == *bound => *last_count = cumulative,
                _ => buckets.push((*bound, cumulative)),
            }
        }
        self.classic_histogram(
            &base,
            family,
            point.flags,
            nanos(point.time_unix_nano),
            point.sum,
            point.count,
            &buckets,
            &point.exemplars,
        );
    }

    fn exponential_point(
        &mut self,
        context: &Context<'_>,
        metric_name: &str,
        family: &str,
        point: &ExponentialHistogramDataPoint,
    ) {
        let Some(base) = self.point_labels(context, metric_name, &point.attributes) else {
            return;
        };
        let buckets = exphist::classic_buckets(point);
        self.classic_histogram(
            &base,
            family,
            point.flags,
            nanos(point.time_unix_nano),
            point.sum,
            point.count,
            &buckets,
            &point.exemplars,
        );
    }

    /// `_sum` (when present), `_count`, cumulative `_bucket{le}` and `+Inf`; exemplars
    /// go to the first bucket whose bound is at least their value.
    #[allow(clippy::too_many_arguments)]
    fn classic_histogram(
        &mut self,
        base: &[Label],
        family: &str,
        flags: u32,
        timestamp: Timestamp,
        sum: Option<f64>,
        count: u64,
        buckets: &[(f64, u64)],
        exemplars: &[OtlpExemplar],
    ) {
        if let Some(sum) = sum {
            let name = format!("{family}_sum");
            let labels = with_labels(base, &[(METRIC_NAME_LABEL, &name)]);
            let value = stale_or(flags, sum);
            self.add_sample(labels, Sample { timestamp, value });
        }
        let name = format!("{family}_count");
        let labels = with_labels(base, &[(METRIC_NAME_LABEL, &name)]);
        let value = stale_or(flags, count as f64);
        self.add_sample(labels, Sample { timestamp, value });

        let bucket_name = format!("{family}_bucket");
        let mut bucket_series = Vec::with_capacity(buckets.len() + 1);
        for (bound, cumulative) in buckets {
            let le = format_float(*bound);
            let labels = with_labels(base, &[(METRIC_NAME_LABEL, &bucket_name), ("le", &le)]);
            let value = stale_or(flags, *cumulative as f64);
            bucket_series.push((*bound, self.add_sample(labels, Sample { timestamp, value })));
        }
        let labels = with_labels(base, &[(METRIC_NAME_LABEL, &bucket_name), ("le", "+Inf")]);
        let value = stale_or(flags, count as f64);
        bucket_series.push((
            f64::INFINITY,
            self.add_sample(labels, Sample { timestamp, value }),
        ));

        for exemplar in self.exemplars(exemplars) {
            let target = bucket_series
                .iter()
                .find(|(bound, _)| exemplar.value <= *bound)
                .map(|(_, index)| *index);
            if let Some(index) = target {
                self.series[index].exemplars.push(exemplar);
            }
        }
    }

    fn summary_point(
        &mut self,
        context: &Context<'_>,
        metric_name: &str,
        family: &str,
        point: &SummaryDataPoint,
    ) {
        let Some(base) = self.point_labels(context, metric_name, &point.attributes) else {
            return;
        };
        let timestamp = nanos(point.time_unix_nano);
        let name = format!("{family}_sum");
        let labels = with_labels(&base, &[(METRIC_NAME_LABEL, &name)]);
        let value = stale_or(point.flags, point.sum);
        self.add_sample(labels, Sample { timestamp, value });
        let name = format!("{family}_count");
        let labels = with_labels(&base, &[(METRIC_NAME_LABEL, &name)]);
        let value = stale_or(point.flags, point.count as f64);
        self.add_sample(labels, Sample { timestamp, value });
        for quantile in &point.quantile_values {
            let q = format_float(quantile.quantile);
            let labels = with_labels(&base, &[(METRIC_NAME_LABEL, family), ("quantile", &q)]);
            let value = stale_or(point.flags, quantile.value);
            self.add_sample(labels, Sample { timestamp, value });
        }
    }
}

/// Data point attributes (sanitized; colliding names joined with `;` in key order), then
/// `otel_scope_name`/`otel_scope_version`, `job`, `instance`. Sorted by name; values may
/// still be empty (dropped by [`finish`]). `Err(key)` names an untranslatable key.
fn base_labels(context: &Context<'_>, attributes: &[KeyValue]) -> Result<Vec<Label>, String> {
    let mut labels = attribute_labels(attributes.iter())?;
    if !context.scope_name.is_empty() {
        upsert(
            &mut labels,
            "otel_scope_name",
            context.scope_name.to_string(),
        );
        upsert(
            &mut labels,
            "otel_scope_version",
            context.scope_version.to_string(),
        );
    }
    if let Some(job) = &context.job {
        upsert(&mut labels, "job", job.clone());
    }
    if let Some(instance) = &context.instance {
        upsert(&mut labels, "instance", instance.clone());
    }
    Ok(labels)
}

/// Attributes as sorted labels, as `createAttributes` does: sorted by original key,
/// names sanitized, values of keys that collide after sanitizing joined with `;`.
fn attribute_labels<'a>(
    attributes: impl Iterator<Item = &'a KeyValue>,
) -> Result<Vec<Label>, String> {
    let mut pairs: Vec<&KeyValue> = attributes.collect();
    pairs.sort_by(|a, b| a.key.cmp(&b.key));
    let mut labels: Vec<Label> = Vec::with_capacity(pairs.len() + 5);
    for kv in pairs {
        let Some(name) = names::label_name(&kv.key) else {
            return Err(kv.key.clone());
        };
        let value = kv.value.as_ref().map(any_value_string).unwrap_or_default();
        match labels.binary_search_by(|l| l.name.as_str().cmp(&name)) {
            Ok(i) => {
                labels[i].value.push(';');
                labels[i].value.push_str(&value);
            }
            Err(i) => labels.insert(i, Label { name, value }),
        }
    }
    Ok(labels)
}

/// Sets `name` in a sorted label vector, replacing an existing value.
fn upsert(labels: &mut Vec<Label>, name: &str, value: String) {
    match labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
        Ok(i) => labels[i].value = value,
        Err(i) => labels.insert(i, Label::new(name, value)),
    }
}

/// `base` plus `extra` (overriding), empty values dropped.
fn with_labels(base: &[Label], extra: &[(&str, &str)]) -> Labels {
    let mut labels = base.to_vec();
    for (name, value) in extra {
        upsert(&mut labels, name, (*value).to_string());
    }
    finish(labels)
}

fn finish(mut labels: Vec<Label>) -> Labels {
    labels.retain(|l| !l.value.is_empty());
    // Sorted with unique names: every insertion above goes through `upsert` or a
    // binary-search insert on a sorted vector.
    Labels::from_sorted_unchecked(labels)
}

/// What became of one OTLP exemplar.
#[derive(Debug)]
enum ExemplarOutcome {
    Kept(Exemplar),
    /// No value: nothing to keep (not counted, as Prometheus).
    NoValue,
    /// The trace and span id labels alone are longer than [`MAX_EXEMPLAR_RUNES`]
    /// (ids of a non-standard length): dropped and counted, as Prometheus'
    /// `ErrExemplarLabelLength`.
    TooLong,
}

fn convert_exemplar(exemplar: &OtlpExemplar) -> ExemplarOutcome {
    let value = match exemplar.value {
        Some(exemplar::Value::AsDouble(v)) => v,
        Some(exemplar::Value::AsInt(v)) => v as f64,
        None => return ExemplarOutcome::NoValue,
    };
    // Standard ids are 16 and 8 bytes (32 and 16 hex digits); anything much longer
    // cannot fit, so it is refused before being hex-encoded.
    if exemplar
        .trace_id
        .len()
        .saturating_add(exemplar.span_id.len())
        > MAX_EXEMPLAR_RUNES
    {
        return ExemplarOutcome::TooLong;
    }
    let mut pairs: Vec<(String, String)> =
        Vec::with_capacity(exemplar.filtered_attributes.len() + 2);
    let mut runes = 0;
    if !exemplar.trace_id.is_empty() {
        let id = hex::encode(&exemplar.trace_id);
        runes += "trace_id".len() + id.len();
        pairs.push(("trace_id".to_string(), id));
    }
    if !exemplar.span_id.is_empty() {
        let id = hex::encode(&exemplar.span_id);
        runes += "span_id".len() + id.len();
        pairs.push(("span_id".to_string(), id));
    }
    if runes > MAX_EXEMPLAR_RUNES {
        return ExemplarOutcome::TooLong;
    }
    let mut filtered_runes = 0usize;
    let mut filtered: Vec<(String, String)> = Vec::new();
    for kv in exemplar
        .filtered_attributes
        .iter()
        .filter(|kv| !kv.key.is_empty())
    {
        filtered_runes = filtered_runes.saturating_add(kv.key.chars().count());
        if runes + filtered_runes > MAX_EXEMPLAR_RUNES {
            break;
        }
        let value = kv.value.as_ref().map(any_value_string).unwrap_or_default();
        filtered_runes = filtered_runes.saturating_add(value.chars().count());
        filtered.push((kv.key.clone(), value));
    }
    // As Prometheus: filtered attributes are kept all or none.
    if runes + filtered_runes <= MAX_EXEMPLAR_RUNES {
        pairs.extend(filtered);
    }
    ExemplarOutcome::Kept(Exemplar {
        labels: Labels::from_pairs(pairs),
        timestamp: nanos(exemplar.time_unix_nano),
        value,
    })
}

fn find_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attributes.iter().find(|kv| kv.key == key)
}

fn value_string(kv: &KeyValue) -> String {
    kv.value.as_ref().map(any_value_string).unwrap_or_default()
}

fn stale_or(flags: u32, value: f64) -> f64 {
    if flags & FLAG_NO_RECORDED_VALUE != 0 {
        f64::from_bits(STALE_NAN_BITS)
    } else {
        value
    }
}

fn nanos(unix_nanos: u64) -> Timestamp {
    Timestamp::try_from(unix_nanos).unwrap_or(Timestamp::MAX)
}

fn point_count(data: &Data) -> u64 {
    let n = match data {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(h) => h.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    };
    n as u64
}

fn point_timestamps(metric: &Metric) -> Box<dyn Iterator<Item = Timestamp> + '_> {
    match &metric.data {
        None => Box::new(std::iter::empty()),
        Some(Data::Gauge(g)) => Box::new(g.data_points.iter().map(|p| nanos(p.time_unix_nano))),
        Some(Data::Sum(s)) => Box::new(s.data_points.iter().map(|p| nanos(p.time_unix_nano))),
        Some(Data::Histogram(h)) => Box::new(h.data_points.iter().map(|p| nanos(p.time_unix_nano))),
        Some(Data::ExponentialHistogram(h)) => {
            Box::new(h.data_points.iter().map(|p| nanos(p.time_unix_nano)))
        }
        Some(Data::Summary(s)) => Box::new(s.data_points.iter().map(|p| nanos(p.time_unix_nano))),
    }
}
