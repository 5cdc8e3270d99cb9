//! Translation cases checked against what Prometheus' OTLP translator produces for the
//! same input (UnderscoreEscapingWithSuffixes, scope promotion on).

use super::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge,
    Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    Summary, SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, metric::Data,
    number_data_point, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use sightline_model::{MetricType, STALE_NAN_BITS, TimeSeries};

const T: u64 = 1_700_000_000_000_000_000;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn shop_resource() -> Vec<KeyValue> {
    vec![
        kv("service.name", "api"),
        kv("service.namespace", "shop"),
        kv("service.instance.id", "i-1"),
        kv("host.name", "h"),
    ]
}

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    version: "1.2.0".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: format!("{name} help"),
        data: Some(data),
        ..Default::default()
    }
}

fn number(value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: T,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn cumulative_sum(monotonic: bool, points: Vec<NumberDataPoint>) -> Data {
    Data::Sum(Sum {
        data_points: points,
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
        is_monotonic: monotonic,
    })
}

fn find<'a>(translation: &'a Translation, text: &str) -> &'a TimeSeries {
    translation
        .request
        .series
        .iter()
        .find(|s| s.labels.to_string() == text)
        .unwrap_or_else(|| {
            let all: Vec<String> = translation
                .request
                .series
                .iter()
                .map(|s| s.labels.to_string())
                .collect();
            panic!("no series {text}; have:\n{}", all.join("\n"))
        })
}

const SCOPE: &str = r#"otel_scope_name="io.opentelemetry.http", otel_scope_version="1.2.0""#;

/// Most tests here check scope promotion as well, so they translate with it on; the
/// default (no scope labels, as Prometheus) has its own test below.
fn translate(request: &ExportMetricsServiceRequest) -> Translation {
    translate_with_options(
        request,
        &TranslateOptions {
            promote_scope_metadata: true,
        },
    )
}

#[test]
fn scope_labels_are_not_added_by_default() {
    // Prometheus' OTLP receiver adds otel_scope_* only with promote_scope_metadata.
    let sum = cumulative_sum(true, vec![number(7.0, vec![kv("http.method", "GET")])]);
    let t = super::translate(&request(
        shop_resource(),
        vec![metric("http.server.requests", "{request}", sum)],
    ));
    let series = find(
        &t,
        r#"http_server_requests_total{http_method="GET", instance="i-1", job="shop/api"}"#,
    );
    assert_eq!(series.samples[0].value, 7.0);
    assert!(
        t.request
            .series
            .iter()
            .all(|s| s.labels.get("otel_scope_name").is_none())
    );
}

#[test]
fn monotonic_sum_with_annotation_unit_becomes_total_counter() {
    // Prometheus: http.server.requests {request} monotonic cumulative sum →
    // http_server_requests_total, job="shop/api", instance="i-1".
    let sum = cumulative_sum(true, vec![number(7.0, vec![kv("http.method", "GET")])]);
    let t = translate(&request(
        shop_resource(),
        vec![metric("http.server.requests", "{request}", sum)],
    ));
    assert_eq!(t.dropped_data_points, 0);
    let series = find(
        &t,
        &format!(
            r#"http_server_requests_total{{http_method="GET", instance="i-1", job="shop/api", {SCOPE}}}"#
        ),
    );
    assert_eq!(series.samples[0].value, 7.0);
    assert_eq!(series.samples[0].timestamp, T as i64);
    assert_eq!(
        t.request.metadata,
        vec![sightline_model::MetricMetadata {
            metric_family_name: "http_server_requests_total".into(),
            metric_type: MetricType::Counter,
            help: "http.server.requests help".into(),
            unit: String::new(),
        }]
    );
}

#[test]
fn target_info_carries_non_identifying_resource_attributes() {
    let gauge = Data::Gauge(Gauge {
        data_points: vec![number(1.0, vec![])],
    });
    let t = translate(&request(shop_resource(), vec![metric("up", "", gauge)]));
    let info = find(
        &t,
        r#"target_info{host_name="h", instance="i-1", job="shop/api"}"#,
    );
    assert_eq!(info.samples.len(), 1);
    assert_eq!(info.samples[0].value, 1.0);
    assert_eq!(info.samples[0].timestamp, T as i64);

    // Only service.* attributes: no target_info.
    let only_service = vec![kv("service.name", "api"), kv("service.instance.id", "i-1")];
    let gauge = Data::Gauge(Gauge {
        data_points: vec![number(1.0, vec![])],
    });
    let t = translate(&request(only_service, vec![metric("up", "", gauge)]));
    assert!(
        t.request
            .series
            .iter()
            .all(|s| s.labels.metric_name() != Some("target_info"))
    );
    find(&t, &format!(r#"up{{instance="i-1", job="api", {SCOPE}}}"#));
}

#[test]
fn target_info_samples_span_the_resource_time_range() {
    let mut late = number(2.0, vec![]);
    late.time_unix_nano = T + 600 * 1_000_000_000;
    let gauge = Data::Gauge(Gauge {
        data_points: vec![number(1.0, vec![]), late],
    });
    let t = translate(&request(shop_resource(), vec![metric("g", "", gauge)]));
    let info = find(
        &t,
        r#"target_info{host_name="h", instance="i-1", job="shop/api"}"#,
    );
    let stamps: Vec<i64> = info
        .samples
        .iter()
        .map(|s| (s.timestamp - T as i64) / 1_000_000_000)
        .collect();
    assert_eq!(stamps, vec![0, 150, 300, 450, 600]);
}

#[test]
fn histogram_becomes_cumulative_buckets_with_inf() {
    // Prometheus: http.server.duration ms → http_server_duration_milliseconds_bucket{le}
    // with cumulative counts and le="+Inf" = count, plus _sum and _count.
    let point = HistogramDataPoint {
        time_unix_nano: T,
        count: 10,
        sum: Some(1234.5),
        bucket_counts: vec![2, 3, 4, 1],
        explicit_bounds: vec![5.0, 10.0, 100.0],
        exemplars: vec![Exemplar {
            time_unix_nano: T - 5,
            value: Some(exemplar::Value::AsDouble(7.5)),
            trace_id: vec![0xab; 16],
            span_id: vec![0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
            filtered_attributes: vec![kv("user", "u1")],
        }],
        ..Default::default()
    };
    let histogram = Data::Histogram(Histogram {
        data_points: vec![point],
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
    });
    let t = translate(&request(
        shop_resource(),
        vec![metric("http.server.duration", "ms", histogram)],
    ));
    let base = format!(r#"instance="i-1", job="shop/api", {SCOPE}"#);
    // Labels print sorted: instance < job < le < otel_scope_*.
    let bucket = |le: &str| {
        let text = format!(
            r#"http_server_duration_milliseconds_bucket{{instance="i-1", job="shop/api", le="{le}", {SCOPE}}}"#
        );
        find(&t, &text).samples[0].value
    };
    assert_eq!(bucket("5"), 2.0);
    assert_eq!(bucket("10"), 5.0);
    assert_eq!(bucket("100"), 9.0);
    assert_eq!(bucket("+Inf"), 10.0);
    let sum = find(
        &t,
        &format!("http_server_duration_milliseconds_sum{{{base}}}"),
    );
    assert_eq!(sum.samples[0].value, 1234.5);
    let count = find(
        &t,
        &format!("http_server_duration_milliseconds_count{{{base}}}"),
    );
    assert_eq!(count.samples[0].value, 10.0);
    // The exemplar (7.5) lands on the first bucket whose bound holds it: le="10".
    let with_exemplar = find(
        &t,
        &format!(
            r#"http_server_duration_milliseconds_bucket{{instance="i-1", job="shop/api", le="10", {SCOPE}}}"#
        ),
    );
    let exemplar = &with_exemplar.exemplars[0];
    assert_eq!(
        exemplar.labels.get("trace_id"),
        Some("abababababababababababababababab")
    );
    assert_eq!(exemplar.labels.get("span_id"), Some("0102030405060708"));
    assert_eq!(exemplar.labels.get("user"), Some("u1"));
    assert_eq!(exemplar.timestamp, T as i64 - 5);
    let meta = &t.request.metadata[0];
    assert_eq!(meta.metric_family_name, "http_server_duration_milliseconds");
    assert_eq!(meta.metric_type, MetricType::Histogram);
    assert_eq!(meta.unit, "milliseconds");
    assert_eq!(meta.help, "http.server.duration help");
}

#[test]
fn gauges_ratios_and_non_monotonic_sums() {
    let gauge = Data::Gauge(Gauge {
        data_points: vec![number(0.25, vec![])],
    });
    let updown = cumulative_sum(false, vec![number(-3.0, vec![])]);
    let t = translate(&request(
        vec![],
        vec![
            metric("system.cpu.utilization", "1", gauge),
            metric("queue.items", "{item}", updown),
        ],
    ));
    find(&t, &format!("system_cpu_utilization_ratio{{{SCOPE}}}"));
    let items = find(&t, &format!("queue_items{{{SCOPE}}}"));
    assert_eq!(items.samples[0].value, -3.0);
    assert_eq!(t.request.metadata[1].metric_type, MetricType::Gauge);
    // No service.* attributes: no job, no instance, no target_info.
    assert_eq!(t.request.series.len(), 2);
}

#[test]
fn delta_temporality_is_dropped_and_counted() {
    let delta = Data::Sum(Sum {
        data_points: vec![number(1.0, vec![]), number(2.0, vec![])],
        aggregation_temporality: AggregationTemporality::Delta as i32,
        is_monotonic: true,
    });
    let delta_histogram = Data::Histogram(Histogram {
        data_points: vec![HistogramDataPoint::default()],
        aggregation_temporality: AggregationTemporality::Delta as i32,
    });
    let t = translate(&request(
        vec![],
        vec![
            metric("requests", "", delta),
            metric("latency", "s", delta_histogram),
        ],
    ));
    assert_eq!(t.dropped_data_points, 3);
    assert!(t.request.series.is_empty());
    assert!(
        t.dropped_reasons[0].contains(r#"metric "requests" has delta temporality"#),
        "{:?}",
        t.dropped_reasons
    );
    let response = t.response();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 3);
    assert!(partial.error_message.contains("latency"));
}

#[test]
fn summary_becomes_quantiles_sum_and_count() {
    let summary = Data::Summary(Summary {
        data_points: vec![SummaryDataPoint {
            time_unix_nano: T,
            count: 4,
            sum: 10.0,
            quantile_values: vec![
                ValueAtQuantile {
                    quantile: 0.5,
                    value: 2.0,
                },
                ValueAtQuantile {
                    quantile: 0.99,
                    value: 4.0,
                },
            ],
            ..Default::default()
        }],
    });
    let t = translate(&request(vec![], vec![metric("rpc.latency", "s", summary)]));
    let q = find(
        &t,
        &format!(r#"rpc_latency_seconds{{{SCOPE}, quantile="0.99"}}"#),
    );
    assert_eq!(q.samples[0].value, 4.0);
    find(
        &t,
        &format!(r#"rpc_latency_seconds{{{SCOPE}, quantile="0.5"}}"#),
    );
    assert_eq!(
        find(&t, &format!("rpc_latency_seconds_sum{{{SCOPE}}}")).samples[0].value,
        10.0
    );
    assert_eq!(
        find(&t, &format!("rpc_latency_seconds_count{{{SCOPE}}}")).samples[0].value,
        4.0
    );
    assert_eq!(t.request.metadata[0].metric_type, MetricType::Summary);
}

#[test]
fn exponential_histogram_converts_to_classic_buckets() {
    let point = ExponentialHistogramDataPoint {
        time_unix_nano: T,
        count: 13,
        sum: Some(40.0),
        scale: 1,
        zero_count: 1,
        positive: Some(Buckets {
            offset: 0,
            bucket_counts: vec![1, 2, 3, 4],
        }),
        negative: Some(Buckets {
            offset: 0,
            bucket_counts: vec![2],
        }),
        ..Default::default()
    };
    let data = Data::ExponentialHistogram(ExponentialHistogram {
        data_points: vec![point],
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
    });
    let t = translate(&request(vec![], vec![metric("payload.size", "By", data)]));
    let mut buckets: Vec<(f64, f64)> = t
        .request
        .series
        .iter()
        .filter(|s| s.labels.metric_name() == Some("payload_size_bytes_bucket"))
        .map(|s| {
            let le = s.labels.get("le").unwrap();
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (bound, s.samples[0].value)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Negative index 0 → le -1; zero bucket le 0; positive at scale 1: base √2, bounds
    // √2, 2, 2√2, 4; then +Inf = count.
    let sqrt2 = std::f64::consts::SQRT_2;
    let want = [
        (-1.0, 2.0),
        (0.0, 3.0),
        (sqrt2, 4.0),
        (2.0, 6.0),
        (2.0 * sqrt2, 9.0),
        (4.0, 13.0),
        (f64::INFINITY, 13.0),
    ];
    assert_eq!(buckets.len(), want.len(), "{buckets:?}");
    for (got, want) in buckets.iter().zip(want) {
        assert!(
            (got.0 - want.0).abs() < 1e-12 || got.0 == want.0,
            "{got:?} vs {want:?}"
        );
        assert_eq!(got.1, want.1);
    }
    assert_eq!(
        find(&t, &format!("payload_size_bytes_count{{{SCOPE}}}")).samples[0].value,
        13.0
    );
    assert_eq!(
        find(&t, &format!("payload_size_bytes_sum{{{SCOPE}}}")).samples[0].value,
        40.0
    );
    assert_eq!(t.request.metadata[0].metric_type, MetricType::Histogram);
}

#[test]
fn no_recorded_value_becomes_stale_marker() {
    let mut point = number(5.0, vec![]);
    point.flags = 1;
    let gauge = Data::Gauge(Gauge {
        data_points: vec![point],
    });
    let histogram = Data::Histogram(Histogram {
        data_points: vec![HistogramDataPoint {
            flags: 1,
            time_unix_nano: T,
            count: 1,
            sum: Some(1.0),
            bucket_counts: vec![1, 0],
            explicit_bounds: vec![1.0],
            ..Default::default()
        }],
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
    });
    let t = translate(&request(
        vec![],
        vec![metric("g", "", gauge), metric("h", "", histogram)],
    ));
    assert_eq!(t.request.series.len(), 5);
    for series in &t.request.series {
        assert_eq!(
            series.samples[0].value.to_bits(),
            STALE_NAN_BITS,
            "{}",
            series.labels
        );
    }
}

#[test]
fn attribute_names_are_sanitized_and_collisions_joined() {
    let gauge = Data::Gauge(Gauge {
        data_points: vec![number(
            1.0,
            vec![
                kv("a.b", "1"),
                kv("a_b", "2"),
                kv("2xx", "y"),
                kv("_x", "z"),
                kv("empty", ""),
            ],
        )],
    });
    let t = translate(&request(vec![], vec![metric("g", "", gauge)]));
    let series = &t.request.series[0];
    assert_eq!(series.labels.get("a_b"), Some("1;2"));
    assert_eq!(series.labels.get("key_2xx"), Some("y"));
    assert_eq!(series.labels.get("key_x"), Some("z"));
    assert_eq!(series.labels.get("empty"), None);
}

#[test]
fn untranslatable_attribute_drops_the_point() {
    let gauge = Data::Gauge(Gauge {
        data_points: vec![number(1.0, vec![kv("..", "x")]), number(2.0, vec![])],
    });
    let t = translate(&request(vec![], vec![metric("g", "", gauge)]));
    assert_eq!(t.dropped_data_points, 1);
    assert_eq!(t.request.series.len(), 1);
    assert!(t.dropped_reasons[0].contains(r#"attribute "..""#));
}

#[test]
fn points_of_one_series_are_merged() {
    let mut second = number(2.0, vec![]);
    second.time_unix_nano = T + 1;
    let gauge = Data::Gauge(Gauge {
        data_points: vec![number(1.0, vec![]), second],
    });
    let t = translate(&request(vec![], vec![metric("g", "", gauge)]));
    assert_eq!(t.request.series.len(), 1);
    assert_eq!(t.request.series[0].samples.len(), 2);
}

#[test]
fn spec_example_json_decodes_and_translates() {
    // opentelemetry-proto examples/metrics.json, verbatim. Its sum and histograms use
    // aggregationTemporality 1 = DELTA, which Prometheus drops: so do we.
    let body = include_str!("testdata/metrics.json");
    let t = translate(&decode_json(body.as_bytes()).unwrap());
    assert_eq!(t.dropped_data_points, 3, "{:?}", t.dropped_reasons);
    assert!(
        t.dropped_reasons
            .iter()
            .all(|r| r.contains("delta temporality"))
    );
    let scope = r#"otel_scope_name="my.library", otel_scope_version="1.0.0""#;
    let gauge = find(
        &t,
        &format!(r#"my_gauge_ratio{{job="my.service", my_gauge_attr="some value", {scope}}}"#),
    );
    assert_eq!(gauge.samples[0].value, 10.0);
    assert_eq!(gauge.samples[0].timestamp, 1_544_712_660_300_000_000);
    // Only service.name on the resource: no target_info.
    assert!(
        t.request
            .series
            .iter()
            .all(|s| s.labels.metric_name() != Some("target_info"))
    );

    // The same body made cumulative (2) translates completely.
    let cumulative = body.replace(
        r#""aggregationTemporality": 1"#,
        r#""aggregationTemporality": 2"#,
    );
    let t = translate(&decode_json(cumulative.as_bytes()).unwrap());
    assert_eq!(t.dropped_data_points, 0, "{:?}", t.dropped_reasons);
    let counter = find(
        &t,
        &format!(r#"my_counter_total{{job="my.service", my_counter_attr="some value", {scope}}}"#),
    );
    assert_eq!(counter.samples[0].value, 5.0);
    let inf = find(
        &t,
        &format!(
            r#"my_histogram_bucket{{job="my.service", le="+Inf", my_histogram_attr="some value", {scope}}}"#
        ),
    );
    assert_eq!(inf.samples[0].value, 2.0);
    let le1 = find(
        &t,
        &format!(
            r#"my_histogram_bucket{{job="my.service", le="1", my_histogram_attr="some value", {scope}}}"#
        ),
    );
    assert_eq!(le1.samples[0].value, 1.0);
    // Exponential: scale 0, zero_count 1, positive offset 1 counts [0, 2] → le 0: 1,
    // le 4: 1, le 8: 3, +Inf: 3.
    for (le, want) in [("0", 1.0), ("4", 1.0), ("8", 3.0), ("+Inf", 3.0)] {
        let text = format!(
            r#"my_exponential_histogram_bucket{{job="my.service", le="{le}", my_exponential_histogram_attr="some value", {scope}}}"#
        );
        assert_eq!(find(&t, &text).samples[0].value, want, "le {le}");
    }
}

#[test]
fn sdk_style_json_with_string_ints_and_hex_ids() {
    let body = r#"{
      "resourceMetrics": [{
        "resource": {"attributes": [
          {"key": "service.name", "value": {"stringValue": "checkout"}},
          {"key": "process.pid", "value": {"intValue": "4242"}},
          {"key": "sampled", "value": {"boolValue": true}}
        ], "droppedAttributesCount": 0},
        "scopeMetrics": [{
          "scope": {"name": "meter"},
          "metrics": [{
            "name": "orders",
            "unit": "{order}",
            "sum": {
              "aggregationTemporality": 2,
              "isMonotonic": true,
              "dataPoints": [{
                "attributes": [{"key": "region", "value": {"stringValue": "eu"}}],
                "startTimeUnixNano": "1700000000000000000",
                "timeUnixNano": 1700000010000000000,
                "asInt": "5",
                "flags": 0,
                "exemplars": [{
                  "timeUnixNano": "1700000009000000000",
                  "asInt": 1,
                  "traceId": "5b8efff798038103d269b633813fc60c",
                  "spanId": "eee19b7ec3c1b174"
                }]
              }]
            }
          }]
        }]
      }]
    }"#;
    let request = decode_json(body.as_bytes()).unwrap();
    let t = translate(&request);
    let series = find(
        &t,
        r#"orders_total{job="checkout", otel_scope_name="meter", region="eu"}"#,
    );
    assert_eq!(series.samples[0].value, 5.0);
    assert_eq!(series.samples[0].timestamp, 1_700_000_010_000_000_000);
    assert_eq!(
        series.exemplars[0].labels.get("trace_id"),
        Some("5b8efff798038103d269b633813fc60c")
    );
    assert_eq!(
        series.exemplars[0].labels.get("span_id"),
        Some("eee19b7ec3c1b174")
    );
    assert_eq!(series.exemplars[0].value, 1.0);
    find(
        &t,
        r#"target_info{job="checkout", process_pid="4242", sampled="true"}"#,
    );
}

#[test]
fn bad_bodies_give_clear_errors() {
    let err = decode_json(b"{\"resourceMetrics\": 5}").unwrap_err();
    assert!(matches!(err, Error::BadJson(_)), "{err:?}");
    let err = decode_protobuf(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err();
    assert!(matches!(err, Error::BadProtobuf(_)), "{err:?}");
}

#[test]
fn protobuf_round_trip() {
    let gauge = Data::Gauge(Gauge {
        data_points: vec![number(1.0, vec![])],
    });
    let original = request(shop_resource(), vec![metric("g", "", gauge)]);
    let decoded = decode_protobuf(&original.encode_to_vec()).unwrap();
    assert_eq!(decoded, original);
}

#[test]
fn json_non_finite_and_string_doubles() {
    let wrap = |point: &str| {
        format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"g","gauge":{{"dataPoints":[{point}]}}}}]}}]}}]}}"#
        )
    };
    let value = |point: &str| {
        let t = translate(&decode_json(wrap(point).as_bytes()).unwrap());
        assert_eq!(t.dropped_data_points, 0, "{point}: {:?}", t.dropped_reasons);
        t.request.series[0].samples[0].value
    };
    assert!(value(r#"{"timeUnixNano":"1","asDouble":"NaN"}"#).is_nan());
    assert_eq!(
        value(r#"{"timeUnixNano":"1","asDouble":"Infinity"}"#),
        f64::INFINITY
    );
    assert_eq!(
        value(r#"{"timeUnixNano":"1","asDouble":"-Infinity"}"#),
        f64::NEG_INFINITY
    );
    assert_eq!(value(r#"{"timeUnixNano":"1","asDouble":"2.5"}"#), 2.5);
    assert_eq!(
        value(r#"{"timeUnixNano":"1","asDouble":1.5,"unknownField":3}"#),
        1.5
    );
    assert_eq!(
        value(r#"{"timeUnixNano":1,"asInt":7,"attributes":[{"key":"k"}]}"#),
        7.0
    );
}

#[test]
fn json_errors_inside_metric_data_are_reported_not_swallowed() {
    // opentelemetry-proto alone would decode this metric with no data at all.
    let body = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
        {"name":"ok","gauge":{"dataPoints":[{"timeUnixNano":"1","asInt":"1"}]}},
        {"name":"broken","gauge":{"dataPoints":[{"timeUnixNano":"1","asInt":"7",
          "attributes":[{"key":"k","value":{"doubleValue":"oops"}}]}]}}
    ]}]}]}"#;
    let err = decode_json(body.as_bytes()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::BadJson(_)));
    assert!(
        message.contains(r#"resourceMetrics[0].scopeMetrics[0].metrics[1] ("broken").gauge"#),
        "{message}"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn arb_histogram_point() -> impl Strategy<Value = HistogramDataPoint> {
        (
            proptest::collection::vec(0u64..1000, 0..12),
            proptest::collection::vec(
                prop_oneof![-1e6f64..1e6, Just(f64::INFINITY), Just(f64::NAN)],
                0..12,
            ),
            any::<u64>(),
            proptest::option::of(any::<f64>()),
            0u32..4,
        )
            .prop_map(|(bucket_counts, mut explicit_bounds, count, sum, flags)| {
                explicit_bounds.sort_by(|a, b| a.total_cmp(b));
                HistogramDataPoint {
                    time_unix_nano: T,
                    bucket_counts,
                    explicit_bounds,
                    count,
                    sum,
                    flags,
                    ..Default::default()
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn random_protobuf_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(request) = decode_protobuf(&bytes) {
                let _ = translate(&request);
            }
        }

        #[test]
        fn random_json_never_panics(text in "\\PC{0,200}") {
            if let Ok(request) = decode_json(text.as_bytes()) {
                let _ = translate(&request);
            }
        }

        #[test]
        fn histogram_buckets_are_cumulative_with_inf_equal_to_count(
            point in arb_histogram_point(),
            name in "[a-z.]{1,12}",
        ) {
            let stale = point.flags & 1 != 0;
            let count = point.count;
            let data = Data::Histogram(Histogram {
                data_points: vec![point],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            });
            let t = translate(&request(vec![], vec![metric(&name, "s", data)]));
            if t.dropped_data_points > 0 {
                // Only a name with nothing valid in it is refused.
                prop_assert!(name.chars().all(|c| c == '.'));
                return Ok(());
            }
            let mut buckets: Vec<(f64, f64)> = t
                .request
                .series
                .iter()
                .filter(|s| s.labels.metric_name().is_some_and(|n| n.ends_with("_bucket")))
                .map(|s| {
                    let le = s.labels.get("le").unwrap_or_default();
                    let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
                    (bound, s.samples[0].value)
                })
                .collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let inf = buckets.last().copied();
            prop_assert_eq!(inf.map(|b| b.0), Some(f64::INFINITY));
            if stale {
                prop_assert!(buckets.iter().all(|b| b.1.to_bits() == STALE_NAN_BITS));
            } else {
                prop_assert_eq!(inf.map(|b| b.1), Some(count as f64));
                let finite: Vec<f64> = buckets[..buckets.len() - 1].iter().map(|b| b.1).collect();
                prop_assert!(finite.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    }
}

#[test]
fn exemplars_over_128_characters_are_dropped_and_counted() {
    let exemplar_with = |trace_id: Vec<u8>, attributes| Exemplar {
        time_unix_nano: T - 5,
        value: Some(exemplar::Value::AsDouble(1.0)),
        trace_id,
        span_id: vec![1; 8],
        filtered_attributes: attributes,
    };
    let point = HistogramDataPoint {
        time_unix_nano: T,
        count: 1,
        sum: Some(1.0),
        bucket_counts: vec![1, 0],
        explicit_bounds: vec![5.0],
        exemplars: vec![
            // Ids of a non-standard length: 2 × 100 hex digits alone pass the limit.
            exemplar_with(vec![0xab; 100], vec![]),
            // Standard ids and a long attribute: kept, without the attribute.
            exemplar_with(vec![0xab; 16], vec![kv("user", &"x".repeat(200))]),
        ],
        ..Default::default()
    };
    let histogram = Data::Histogram(Histogram {
        data_points: vec![point],
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
    });
    let t = translate(&request(
        shop_resource(),
        vec![metric("latency", "s", histogram)],
    ));
    assert_eq!(t.dropped_exemplars, 1);
    assert_eq!(t.dropped_data_points, 0);
    let kept: Vec<_> = t
        .request
        .series
        .iter()
        .flat_map(|s| s.exemplars.iter())
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].labels.get("user"), None);
    assert_eq!(
        kept[0].labels.get("trace_id"),
        Some("abababababababababababababababab")
    );
    // Every series still has its sample.
    assert!(t.request.series.iter().all(|s| s.samples.len() == 1));
}
