//! OTLP metrics over HTTP protobuf, HTTP JSON and gRPC come out as the series
//! Prometheus' own OTLP translation would make.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::json;

use crate::client::{
    api_get, instant_query, recent_base_millis, sorted_label_sets, vector_response,
};
use crate::server::TestServer;

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// A monotonic cumulative sum, a gauge with unit `By` and a histogram with unit `s`,
/// from service `service` / instance `instance` with one extra resource attribute.
fn export_request(service: &str, instance: &str, time_nanos: u64) -> ExportMetricsServiceRequest {
    let start_nanos = time_nanos - 60_000_000_000;
    let requests = Metric {
        name: "app.requests".to_string(),
        description: "Requests handled.".to_string(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                attributes: vec![attribute("method", "GET")],
                start_time_unix_nano: start_nanos,
                time_unix_nano: time_nanos,
                value: Some(number_data_point::Value::AsInt(7)),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    let memory = Metric {
        name: "app.memory.usage".to_string(),
        unit: "By".to_string(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: time_nanos,
                value: Some(number_data_point::Value::AsDouble(1024.0)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let latency = Metric {
        name: "app.latency".to_string(),
        unit: "s".to_string(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                start_time_unix_nano: start_nanos,
                time_unix_nano: time_nanos,
                count: 10,
                sum: Some(4.25),
                bucket_counts: vec![1, 2, 3, 4],
                explicit_bounds: vec![0.1, 0.5, 1.0],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    attribute("service.name", service),
                    attribute("service.instance.id", instance),
                    attribute("deployment.environment", "prod"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                // No scope name: no otel_scope_* labels.
                scope: Some(InstrumentationScope::default()),
                metrics: vec![requests, memory, latency],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The same request in OTLP/JSON, written by hand as a user's exporter would send it.
fn export_request_json(service: &str, instance: &str, time_nanos: u64) -> serde_json::Value {
    let start_nanos = time_nanos - 60_000_000_000;
    let attribute = |key: &str, value: &str| json!({"key": key, "value": {"stringValue": value}});
    json!({"resourceMetrics": [{
        "resource": {"attributes": [
            attribute("service.name", service),
            attribute("service.instance.id", instance),
            attribute("deployment.environment", "prod"),
        ]},
        "scopeMetrics": [{
            "scope": {},
            "metrics": [
                {"name": "app.requests", "description": "Requests handled.", "sum": {
                    "aggregationTemporality": 2, "isMonotonic": true,
                    "dataPoints": [{"attributes": [attribute("method", "GET")],
                        "startTimeUnixNano": start_nanos.to_string(),
                        "timeUnixNano": time_nanos.to_string(), "asInt": "7"}]}},
                {"name": "app.memory.usage", "unit": "By", "gauge": {
                    "dataPoints": [{"timeUnixNano": time_nanos.to_string(), "asDouble": 1024.0}]}},
                {"name": "app.latency", "unit": "s", "histogram": {
                    "aggregationTemporality": 2,
                    "dataPoints": [{"startTimeUnixNano": start_nanos.to_string(),
                        "timeUnixNano": time_nanos.to_string(), "count": "10", "sum": 4.25,
                        "bucketCounts": ["1", "2", "3", "4"], "explicitBounds": [0.1, 0.5, 1.0]}]}}
            ]
        }]
    }]})
}

/// Checks the series and values one service's export produced.
async fn assert_translated(server: &TestServer, service: &str, instance: &str, time_millis: i64) {
    let base: &[(&str, &str)] = &[("instance", instance), ("job", service)];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        let mut labels: Vec<(&str, &str)> = base.to_vec();
        labels.extend_from_slice(extra);
        labels
    };
    let requests = with(&[("__name__", "app_requests_total"), ("method", "GET")]);
    let memory = with(&[("__name__", "app_memory_usage_bytes")]);
    let bucket = |le: &'static str| with(&[("__name__", "app_latency_seconds_bucket"), ("le", le)]);
    let buckets = [bucket("0.1"), bucket("0.5"), bucket("1"), bucket("+Inf")];
    let count = with(&[("__name__", "app_latency_seconds_count")]);
    let sum = with(&[("__name__", "app_latency_seconds_sum")]);
    let target_info = with(&[
        ("__name__", "target_info"),
        ("deployment_environment", "prod"),
    ]);
    let expected: Vec<&[(&str, &str)]> = vec![
        &requests,
        &memory,
        &buckets[0],
        &buckets[1],
        &buckets[2],
        &buckets[3],
        &count,
        &sum,
        &target_info,
    ];
    let selector = format!("{{job=\"{service}\"}}");
    let (status, body) = api_get(server, None, "/api/v1/series", &[("match[]", &selector)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "data": sorted_label_sets(&expected)}),
        "series of {service}\n{}",
        server.logs()
    );

    let at = time_millis + 1_000;
    let query = |name: &str| format!("{name}{{job=\"{service}\"}}");
    assert_eq!(
        instant_query(server, None, &query("app_requests_total"), at).await,
        vector_response(at, &[(&requests, "7")])
    );
    assert_eq!(
        instant_query(server, None, &query("app_memory_usage_bytes"), at).await,
        vector_response(at, &[(&memory, "1024")])
    );
    assert_eq!(
        instant_query(server, None, &query("app_latency_seconds_bucket"), at).await,
        vector_response(
            at,
            &[
                (&buckets[3], "10"),
                (&buckets[0], "1"),
                (&buckets[1], "3"),
                (&buckets[2], "6")
            ]
        )
    );
    assert_eq!(
        instant_query(server, None, &query("app_latency_seconds_sum"), at).await,
        vector_response(at, &[(&sum, "4.25")])
    );
    assert_eq!(
        instant_query(server, None, &query("target_info"), at).await,
        vector_response(at, &[(&target_info, "1")])
    );
}

#[tokio::test]
async fn otlp_over_http_protobuf_http_json_and_grpc() {
    let server = TestServer::start().await;
    let time_millis = recent_base_millis(30);
    let time_nanos = u64::try_from(time_millis).expect("positive") * 1_000_000;

    // HTTP protobuf, on the dedicated OTLP listener.
    let body = export_request("checkout-proto", "i-proto", time_nanos).encode_to_vec();
    let response = server
        .client
        .post(server.otlp_http_url("/v1/metrics"))
        .header("Content-Type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("OTLP/HTTP protobuf request");
    let status = response.status().as_u16();
    assert_eq!(status, 200, "{}", response.text().await.unwrap_or_default());

    // HTTP JSON, on the main listener.
    let body = export_request_json("checkout-json", "i-json", time_nanos).to_string();
    let response = server
        .client
        .post(server.url("/v1/metrics"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("OTLP/HTTP JSON request");
    let status = response.status().as_u16();
    assert_eq!(status, 200, "{}", response.text().await.unwrap_or_default());

    // gRPC.
    let mut client = MetricsServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .expect("connect OTLP gRPC");
    let response = client
        .export(export_request("checkout-grpc", "i-grpc", time_nanos))
        .await
        .expect("OTLP gRPC export")
        .into_inner();
    assert!(response.partial_success.is_none(), "{response:?}");

    assert_translated(&server, "checkout-proto", "i-proto", time_millis).await;
    assert_translated(&server, "checkout-json", "i-json", time_millis).await;
    assert_translated(&server, "checkout-grpc", "i-grpc", time_millis).await;

    // Metadata from OTLP: type, help from the description, unit word.
    let (_, body) = api_get(
        &server,
        None,
        "/api/v1/metadata",
        &[("metric", "app_requests_total")],
    )
    .await;
    assert_eq!(
        body,
        json!({"status": "success", "data": {"app_requests_total": [{"type": "counter", "help": "Requests handled.", "unit": ""}]}})
    );
}
