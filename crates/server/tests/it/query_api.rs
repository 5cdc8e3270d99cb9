//! The PromQL query API end to end: data written with remote_write, read back with
//! `/api/v1/query` and `/api/v1/query_range` in Prometheus' exact shapes, every error
//! type with its status, the `query:` limits, the queue, tenants, and the query tools
//! and status endpoints around them.

use serde_json::{Value, json};

use crate::client::{
    api_get, api_get_raw, api_post_form, exposition_sum, label_object, prom_time,
    recent_base_millis, remote_write_ok, seconds_text, series, write_request,
};
use crate::server::TestServer;

/// Sample interval of the test data.
const STEP_MILLIS: i64 = 15_000;
/// Samples per series: ten minutes of data.
const SAMPLES: i64 = 41;

/// `qa_requests_total{code="200"}` = 10·i and `{code="500"}` = i at `base + i·15s`,
/// for tenant `tenant`.
async fn write_requests(server: &TestServer, tenant: Option<&str>, base: i64) {
    let points = |factor: f64| -> Vec<(i64, f64)> {
        (0..SAMPLES)
            .map(|i| (base + i * STEP_MILLIS, i as f64 * factor))
            .collect()
    };
    remote_write_ok(
        server,
        tenant,
        &write_request(vec![
            series(
                "qa_requests_total",
                &[("job", "api"), ("code", "200")],
                &points(10.0),
            ),
            series(
                "qa_requests_total",
                &[("job", "api"), ("code", "500")],
                &points(1.0),
            ),
        ]),
    )
    .await;
}

async fn query_at(server: &TestServer, tenant: Option<&str>, query: &str, at: i64) -> Value {
    let (status, body) = api_get(
        server,
        tenant,
        "/api/v1/query",
        &[("query", query), ("time", &seconds_text(at))],
    )
    .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// GET `/api/v1/query_range` with its four parameters as sent.
async fn get_range(
    server: &TestServer,
    tenant: Option<&str>,
    query: &str,
    (start, end, step): (&str, &str, &str),
) -> (u16, Value) {
    api_get(
        server,
        tenant,
        "/api/v1/query_range",
        &[
            ("query", query),
            ("start", start),
            ("end", end),
            ("step", step),
        ],
    )
    .await
}

/// A range query from `start` to `end` (ms) that must succeed.
async fn query_range(
    server: &TestServer,
    tenant: Option<&str>,
    query: &str,
    (start, end, step_seconds): (i64, i64, &str),
) -> Value {
    let (start, end) = (seconds_text(start), seconds_text(end));
    let (status, body) = get_range(server, tenant, query, (&start, &end, step_seconds)).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn success(result_type: &str, result: Value) -> Value {
    json!({"status": "success", "data": {"resultType": result_type, "result": result}})
}

fn point(millis: i64, value: &str) -> Value {
    json!([prom_time(millis), value])
}

/// Asserts an error answer: status, `errorType`, and a message containing `wanted`.
fn assert_error((status, body): (u16, Value), want_status: u16, error_type: &str, wanted: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["errorType"], error_type, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(wanted),
        "{message:?} should contain {wanted:?}"
    );
}

#[tokio::test]
async fn queries_answer_in_prometheus_shapes() {
    let server = TestServer::start().await;
    let base = recent_base_millis(900);
    write_requests(&server, None, base).await;
    let end = base + (SAMPLES - 1) * STEP_MILLIS;
    let ok_500 = label_object(&[
        ("__name__", "qa_requests_total"),
        ("code", "500"),
        ("job", "api"),
    ]);

    // Scalar and string literals, byte for byte.
    let (status, raw, _) = api_get_raw(
        &server,
        None,
        "/api/v1/query",
        &[("query", "1 + 1"), ("time", "1700000000.5")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        raw,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.500,"2"]}}"#
    );
    assert_eq!(
        query_at(&server, None, r#""hello""#, end).await,
        success("string", point(end, "hello"))
    );
    for (query, value) in [
        ("0/0", "NaN"),
        ("1/0", "+Inf"),
        ("-1/0", "-Inf"),
        ("1e-7", "1e-07"),
    ] {
        assert_eq!(
            query_at(&server, None, query, end).await,
            success("scalar", point(end, value)),
            "{query}"
        );
    }

    // Vectors: selectors, aggregations, functions and arithmetic.
    assert_eq!(
        query_at(&server, None, r#"qa_requests_total{code="500"}"#, end).await,
        success(
            "vector",
            json!([{"metric": ok_500, "value": point(end, "40")}])
        )
    );
    assert_eq!(
        query_at(&server, None, "sum by (job) (qa_requests_total)", end).await,
        success(
            "vector",
            json!([{"metric": {"job": "api"}, "value": point(end, "440")}])
        )
    );
    assert_eq!(
        query_at(
            &server,
            None,
            r#"count_over_time(qa_requests_total{code="500"}[5m])"#,
            end
        )
        .await,
        success(
            "vector",
            json!([{"metric": {"code": "500", "job": "api"}, "value": point(end, "20")}])
        )
    );
    assert_eq!(
        query_at(&server, None, r#"qa_requests_total{code="500"} / 16"#, end).await,
        success(
            "vector",
            json!([{"metric": {"code": "500", "job": "api"}, "value": point(end, "2.5")}])
        )
    );
    assert_eq!(
        query_at(&server, None, "scalar(sum(qa_requests_total))", end).await,
        success("scalar", point(end, "440"))
    );
    // `limit` cuts the result and says so.
    let (status, body) = api_get(
        &server,
        None,
        "/api/v1/query",
        &[
            ("query", "qa_requests_total"),
            ("time", &seconds_text(end)),
            ("limit", "1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["warnings"], json!(["results truncated due to limit"]));

    // Matrices: a range query of a selector, of an aggregation, of a scalar.
    let first_five: Vec<Value> = (0..5)
        .map(|i| point(base + i * STEP_MILLIS, &i.to_string()))
        .collect();
    assert_eq!(
        query_range(
            &server,
            None,
            r#"qa_requests_total{code="500"}"#,
            (base, base + 60_000, "15")
        )
        .await,
        success("matrix", json!([{"metric": ok_500, "values": first_five}]))
    );
    assert_eq!(
        query_range(
            &server,
            None,
            "sum(qa_requests_total)",
            (base + 30_000, base + 60_000, "30s")
        )
        .await,
        success(
            "matrix",
            json!([{"metric": {}, "values": [point(base + 30_000, "22"), point(base + 60_000, "44")]}])
        )
    );
    let (status, body) = api_post_form(
        &server,
        None,
        "/api/v1/query_range",
        &[
            ("query", "time()"),
            ("start", "1700000000"),
            ("end", "1700000001"),
            ("step", "0.5"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        success(
            "matrix",
            json!([{"metric": {}, "values": [
                [1700000000, "1700000000"],
                [1700000000.5, "1700000000.5"],
                [1700000001, "1700000001"]
            ]}])
        )
    );
    // Prometheus' fixed resolution limit is the default: 11,000 steps pass, 11,001 not.
    let steps = |count: i64| {
        let server = &server;
        async move { get_range(server, None, "vector(1)", ("0", &count.to_string(), "1s")).await }
    };
    let (status, body) = steps(11_000).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["result"][0]["values"].as_array().map(Vec::len),
        Some(11_001)
    );
    assert_error(
        steps(11_001).await,
        400,
        "bad_data",
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query \
         resolution (?step=XX)",
    );
    // A form POST to /api/v1/query works as a GET does.
    let (status, body) = api_post_form(
        &server,
        None,
        "/api/v1/query",
        &[
            ("query", r#"qa_requests_total{code="500"}"#),
            ("time", &seconds_text(end)),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        success(
            "vector",
            json!([{"metric": ok_500, "value": point(end, "40")}])
        )
    );
}

#[tokio::test]
async fn tenants_only_query_their_own_data() {
    let server = TestServer::start().await;
    let base = recent_base_millis(900);
    write_requests(&server, Some("qa-a"), base).await;
    let end = base + (SAMPLES - 1) * STEP_MILLIS;
    let total = query_at(&server, Some("qa-a"), "sum(qa_requests_total)", end).await;
    assert_eq!(
        total,
        success(
            "vector",
            json!([{"metric": {}, "value": point(end, "440")}])
        )
    );
    for tenant in [Some("qa-b"), None] {
        assert_eq!(
            query_at(&server, tenant, "sum(qa_requests_total)", end).await,
            success("vector", json!([])),
            "tenant {tenant:?}"
        );
        assert_eq!(
            query_range(&server, tenant, "qa_requests_total", (base, end, "60")).await,
            success("matrix", json!([])),
            "tenant {tenant:?}"
        );
    }
}

#[tokio::test]
async fn query_errors_have_prometheus_types_statuses_and_limits() {
    let server = TestServer::start_with_config(Some(
        "query:\n  max_samples: 100\n  max_series: 4\n  max_points_per_series: 100\n",
    ))
    .await;
    let base = recent_base_millis(900);
    write_requests(&server, None, base).await;
    let end = base + (SAMPLES - 1) * STEP_MILLIS;
    remote_write_ok(
        &server,
        None,
        &write_request(vec![
            series(
                "qa_other",
                &[("job", "api"), ("code", "200")],
                &[(end, 1.0)],
            ),
            series(
                "qa_other",
                &[("job", "api"), ("code", "500")],
                &[(end, 1.0)],
            ),
        ]),
    )
    .await;
    let at = seconds_text(end);
    let query = |text: &'static str| {
        let at = at.clone();
        let server = &server;
        async move {
            api_get(
                server,
                None,
                "/api/v1/query",
                &[("query", text), ("time", &at)],
            )
            .await
        }
    };

    // The client's mistakes: 400 bad_data.
    assert_error(
        query("sum(").await,
        400,
        "bad_data",
        "invalid parameter \"query\"",
    );
    assert_error(
        api_get(
            &server,
            None,
            "/api/v1/query",
            &[("query", "up"), ("timeout", "soon")],
        )
        .await,
        400,
        "bad_data",
        "invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration",
    );
    assert_error(
        api_get(
            &server,
            None,
            "/api/v1/query",
            &[("query", "up"), ("lookback_delta", "x")],
        )
        .await,
        400,
        "bad_data",
        "error parsing lookback delta duration",
    );
    let range = |start: &'static str, end: &'static str, step: &'static str| {
        get_range(&server, None, "qa_requests_total", (start, end, step))
    };
    assert_error(
        range("10", "5", "1").await,
        400,
        "bad_data",
        "invalid parameter \"end\": end timestamp must not be before start time",
    );
    assert_error(
        range("0", "5", "0").await,
        400,
        "bad_data",
        "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
    );
    assert_error(
        range("0", "5", "").await,
        400,
        "bad_data",
        "invalid parameter \"step\": cannot parse \"\" to a valid duration",
    );
    assert_error(
        range("", "5", "1").await,
        400,
        "bad_data",
        "invalid parameter \"start\": cannot parse \"\" to a valid timestamp",
    );
    // 100 steps are allowed (as Prometheus allows 11,000), 101 are not.
    let (status, body) = range("0", "100", "1").await;
    assert_eq!(status, 200, "{body}");
    assert_error(
        range("0", "101", "1").await,
        400,
        "bad_data",
        "exceeded maximum resolution of 100 points per timeseries. Try decreasing the query \
         resolution (?step=XX) (query.max_points_per_series)",
    );
    let (status, body) = api_get(
        &server,
        None,
        "/api/v1/query_range",
        &[
            ("query", "qa_requests_total[5m]"),
            ("start", "0"),
            ("end", "1"),
            ("step", "1"),
        ],
    )
    .await;
    assert_error(
        (status, body),
        400,
        "bad_data",
        "invalid expression type \"range vector\" for range query",
    );

    // Queries that cannot be evaluated: 422 execution.
    assert_error(
        query("qa_requests_total + on(job) qa_other").await,
        422,
        "execution",
        "many-to-many matching not allowed",
    );
    // Limits: named with their values.
    assert_error(
        query("count_over_time(qa_requests_total[10m]) + count_over_time(qa_requests_total[10m])")
            .await,
        422,
        "execution",
        "limit is 100 (query.max_samples)",
    );
    assert_error(
        query("qa_requests_total + qa_other + qa_requests_total").await,
        422,
        "execution",
        "query would select at least 6 series; limit is 4 (query.max_series)",
    );
    // Running out of time: 503 timeout, whatever the phase.
    assert_error(
        api_get(
            &server,
            None,
            "/api/v1/query",
            &[("query", "qa_requests_total"), ("timeout", "0.0000001")],
        )
        .await,
        503,
        "timeout",
        "query timed out in query preparation; limit is 0s (query.timeout)",
    );
    // The server keeps answering.
    let (status, body) = query("count(qa_requests_total)").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn queued_queries_wait_for_the_one_slot_and_all_succeed() {
    let server = TestServer::start_with_config(Some("query:\n  max_concurrent: 1\n")).await;
    let base = recent_base_millis(900);
    write_requests(&server, None, base).await;
    let end = seconds_text(base + (SAMPLES - 1) * STEP_MILLIS);
    let start = seconds_text(base);
    let queries: Vec<_> = (0..12)
        .map(|_| {
            let (server, start, end) = (&server, start.clone(), end.clone());
            async move {
                api_get(
                    server,
                    None,
                    "/api/v1/query_range",
                    &[
                        ("query", "sum(count_over_time(qa_requests_total[5m]))"),
                        ("start", &start),
                        ("end", &end),
                        ("step", "1"),
                    ],
                )
                .await
            }
        })
        .collect();
    let answers = futures_join_all(queries).await;
    let first = &answers[0].1;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body, first);
    }
    assert_eq!(
        first["data"]["result"][0]["values"]
            .as_array()
            .map(Vec::len),
        Some(601)
    );
    // Nothing is left queued or in flight.
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert_eq!(
        exposition_sum(&metrics, "sightline_queries_queued"),
        Some(0.0)
    );
    assert_eq!(
        exposition_sum(&metrics, "sightline_queries_in_flight"),
        Some(0.0)
    );
}

/// Awaits every future concurrently (what `futures::future::join_all` does), on the
/// test's own runtime.
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_some() {
                continue;
            }
            match future.as_mut().poll(context) {
                std::task::Poll::Ready(value) => *output = Some(value),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[tokio::test]
async fn query_tools_and_status_endpoints() {
    let server = TestServer::start().await;
    let base = recent_base_millis(900);
    write_requests(&server, None, base).await;

    let (status, body) = api_get(
        &server,
        None,
        "/api/v1/format_query",
        &[("query", "sum(rate(qa_requests_total[5m]))by(job)")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "data": "sum by (job) (rate(qa_requests_total[5m]))"})
    );
    assert_error(
        api_get(&server, None, "/api/v1/format_query", &[("query", "sum(")]).await,
        400,
        "bad_data",
        "invalid parameter \"query\"",
    );
    let (status, body) = api_post_form(
        &server,
        None,
        "/api/v1/parse_query",
        &[("query", "qa_requests_total")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["type"], "vectorSelector", "{body}");
    assert_eq!(body["data"]["name"], "qa_requests_total", "{body}");

    // TSDB cardinality, Prometheus' shape, per tenant.
    let (status, body) = api_get(&server, None, "/api/v1/status/tsdb", &[("limit", "1")]).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["headStats"]["numSeries"], 2, "{body}");
    assert_eq!(data["headStats"]["numLabelPairs"], 4, "{body}");
    assert_eq!(data["headStats"]["minTime"], base, "{body}");
    assert_eq!(
        data["headStats"]["maxTime"],
        base + (SAMPLES - 1) * STEP_MILLIS,
        "{body}"
    );
    assert!(data["headStats"]["chunkCount"].as_u64().is_some(), "{body}");
    assert_eq!(
        data["seriesCountByMetricName"],
        json!([{"name": "qa_requests_total", "value": 2}])
    );
    assert_eq!(
        data["labelValueCountByLabelName"],
        json!([{"name": "code", "value": 2}])
    );
    assert_eq!(
        data["memoryInBytesByLabelName"],
        json!([{"name": "__name__", "value": 17}])
    );
    assert_eq!(
        data["seriesCountByLabelValuePair"],
        json!([{"name": "__name__=qa_requests_total", "value": 2}])
    );
    let (status, body) = api_get(&server, Some("nobody"), "/api/v1/status/tsdb", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["headStats"]["numSeries"], 0, "{body}");
    assert_eq!(body["data"]["seriesCountByMetricName"], json!([]), "{body}");
    assert_error(
        api_get(&server, None, "/api/v1/status/tsdb", &[("limit", "0")]).await,
        400,
        "bad_data",
        "limit must be a positive number",
    );

    // Runtime info keeps every Prometheus key.
    let (status, body) = api_get(&server, None, "/api/v1/status/runtimeinfo", &[]).await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&str> = body["data"]
        .as_object()
        .map(|object| object.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for key in [
        "startTime",
        "CWD",
        "hostname",
        "serverTime",
        "reloadConfigSuccess",
        "lastConfigTime",
        "corruptionCount",
        "goroutineCount",
        "GOMAXPROCS",
        "GOMEMLIMIT",
        "GOGC",
        "GODEBUG",
        "storageRetention",
    ] {
        assert!(keys.contains(&key), "{key} missing from {body}");
    }
    assert_eq!(body["data"]["storageRetention"], "15d");
    assert_eq!(body["data"]["reloadConfigSuccess"], true);

    let (status, body) = api_get(&server, None, "/api/v1/status/flags", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["listen"], server.http.to_string(), "{body}");
    assert_eq!(body["data"]["enable-admin-api"], "true", "{body}");
    let (status, body) = api_get(&server, None, "/api/v1/status/config", &[]).await;
    assert_eq!(status, 200, "{body}");
    let yaml = body["data"]["yaml"].as_str().unwrap_or_default();
    assert!(yaml.contains("max_concurrent: 20"), "{yaml}");
}
