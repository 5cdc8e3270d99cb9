//! What a client of Sightline does, in a few helpers: remote_write requests, Prometheus
//! API calls, and waiting for a condition under a deadline.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sightline_ingest::remote_write::{encode_request, proto};

use crate::server::TestServer;

/// Milliseconds since the epoch, now.
pub(crate) fn now_millis() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("millis fit i64")
}

/// A whole second a little in the past: a base for sample timestamps the store accepts.
pub(crate) fn recent_base_millis(seconds_ago: i64) -> i64 {
    (now_millis() / 1000 - seconds_ago) * 1000
}

/// One remote_write series from a metric name, labels and `(millis, value)` samples.
pub(crate) fn series(
    name: &str,
    labels: &[(&str, &str)],
    samples: &[(i64, f64)],
) -> proto::TimeSeries {
    let mut all_labels = vec![proto::Label::new("__name__", name)];
    all_labels.extend(labels.iter().map(|(n, v)| proto::Label::new(*n, *v)));
    proto::TimeSeries {
        labels: all_labels,
        samples: samples
            .iter()
            .map(|(timestamp, value)| proto::Sample {
                value: *value,
                timestamp: *timestamp,
            })
            .collect(),
        ..Default::default()
    }
}

pub(crate) fn write_request(timeseries: Vec<proto::TimeSeries>) -> proto::WriteRequest {
    proto::WriteRequest {
        timeseries,
        ..Default::default()
    }
}

/// POSTs an already-encoded body to `/api/v1/write` with remote_write 1.0 headers.
pub(crate) async fn post_remote_write_body(
    server: &TestServer,
    tenant: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = server
        .client
        .post(server.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body);
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let response = request.send().await.expect("remote_write request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, text)
}

/// Sends a remote_write request; returns status and body text.
pub(crate) async fn remote_write(
    server: &TestServer,
    tenant: Option<&str>,
    request: &proto::WriteRequest,
) -> (u16, String) {
    post_remote_write_body(server, tenant, encode_request(request)).await
}

/// Sends a remote_write request and fails the test unless it is accepted (204).
pub(crate) async fn remote_write_ok(
    server: &TestServer,
    tenant: Option<&str>,
    request: &proto::WriteRequest,
) {
    let (status, body) = remote_write(server, tenant, request).await;
    assert_eq!(
        status,
        204,
        "remote_write refused: {body}\n{}",
        server.logs()
    );
}

/// Percent-encodes a query parameter value.
pub(crate) fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn query_string(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(name, value)| format!("{}={}", encode_component(name), encode_component(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// GET `path?params` as `tenant`; returns status, raw body and the parsed JSON (Null
/// when the body is not JSON).
pub(crate) async fn api_get_raw(
    server: &TestServer,
    tenant: Option<&str>,
    path: &str,
    params: &[(&str, &str)],
) -> (u16, String, Value) {
    let mut url = server.url(path);
    if !params.is_empty() {
        url.push('?');
        url.push_str(&query_string(params));
    }
    let mut request = server.client.get(url);
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let response = request.send().await.expect("API request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, text, value)
}

/// GET an API path and parse the JSON body.
pub(crate) async fn api_get(
    server: &TestServer,
    tenant: Option<&str>,
    path: &str,
    params: &[(&str, &str)],
) -> (u16, Value) {
    let (status, _, value) = api_get_raw(server, tenant, path, params).await;
    (status, value)
}

/// POST an API path with a urlencoded form body.
pub(crate) async fn api_post_form(
    server: &TestServer,
    tenant: Option<&str>,
    path: &str,
    params: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = server
        .client
        .post(server.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(query_string(params));
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let response = request.send().await.expect("API request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An instant query at `time_millis`; fails the test unless it succeeds.
pub(crate) async fn instant_query(
    server: &TestServer,
    tenant: Option<&str>,
    query: &str,
    time_millis: i64,
) -> Value {
    let time = seconds_text(time_millis);
    let (status, value) = api_get(
        server,
        tenant,
        "/api/v1/query",
        &[("query", query), ("time", &time)],
    )
    .await;
    assert_eq!(status, 200, "query {query:?} failed: {value}");
    value
}

/// `1700000000.123`: milliseconds as the seconds text Prometheus clients send.
pub(crate) fn seconds_text(millis: i64) -> String {
    format!("{}.{:03}", millis.div_euclid(1000), millis.rem_euclid(1000))
}

/// The JSON number Prometheus writes for a millisecond timestamp (an integer when the
/// milliseconds are zero, which is how it compares equal after parsing).
pub(crate) fn prom_time(millis: i64) -> Value {
    if millis % 1000 == 0 {
        json!(millis / 1000)
    } else {
        json!(millis as f64 / 1000.0)
    }
}

/// A label set as the JSON object Prometheus returns.
pub(crate) fn label_object(labels: &[(&str, &str)]) -> Value {
    let map: BTreeMap<&str, &str> = labels.iter().copied().collect();
    json!(map)
}

/// Label sets in Prometheus' order (compared label by label, name then value).
pub(crate) fn sorted_label_sets(sets: &[&[(&str, &str)]]) -> Value {
    let mut sorted: Vec<BTreeMap<&str, &str>> = sets
        .iter()
        .map(|set| set.iter().copied().collect())
        .collect();
    sorted.sort_by(|a, b| a.iter().cmp(b.iter()));
    json!(sorted)
}

/// `{"status":"success","data":{"resultType":"vector","result":[...]}}` from
/// `(labels, value text)` pairs already in label order, all at `time_millis`.
pub(crate) fn vector_response(time_millis: i64, samples: &[(&[(&str, &str)], &str)]) -> Value {
    let result: Vec<Value> = samples
        .iter()
        .map(|(labels, value)| {
            json!({"metric": label_object(labels), "value": [prom_time(time_millis), value]})
        })
        .collect();
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

/// Polls `condition` every 20 ms until it holds; fails the test after `timeout`.
pub(crate) async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sum of every sample of `metric` (any labels) in a Prometheus text exposition.
pub(crate) fn exposition_sum(text: &str, metric: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value_text = rest.rsplit(' ').next().unwrap_or("");
        if let Ok(value) = value_text.parse::<f64>() {
            found = true;
            sum += value;
        }
    }
    found.then_some(sum)
}
