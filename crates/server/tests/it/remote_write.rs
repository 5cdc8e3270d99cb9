//! remote_write in, Prometheus HTTP API out: the shapes a Grafana or promtool user sees.

use serde_json::{Value, json};
use sightline_ingest::remote_write::proto;

use crate::client::{
    api_get, api_get_raw, api_post_form, instant_query, label_object, prom_time,
    recent_base_millis, remote_write_ok, seconds_text, series, sorted_label_sets, vector_response,
    write_request,
};
use crate::server::TestServer;

const OK_200: &[(&str, &str)] = &[
    ("__name__", "rt_requests_total"),
    ("code", "200"),
    ("instance", "app:8080"),
    ("job", "api"),
];
const ERR_500: &[(&str, &str)] = &[
    ("__name__", "rt_requests_total"),
    ("code", "500"),
    ("instance", "app:8080"),
    ("job", "api"),
];
const TEMPERATURE: &[(&str, &str)] = &[
    ("__name__", "rt_temperature_celsius"),
    ("instance", "node:9100"),
    ("job", "node"),
];
const RATIO: &[(&str, &str)] = &[("__name__", "rt_ratio"), ("job", "node")];
const TINY: &[(&str, &str)] = &[("__name__", "rt_tiny"), ("job", "node")];

/// Writes the round-trip data set at `base` and `base + 15s`.
async fn write_data_set(server: &TestServer, base: i64) {
    let later = base + 15_000;
    let mut ok = series(
        "rt_requests_total",
        &[("job", "api"), ("instance", "app:8080"), ("code", "200")],
        &[(base, 1.0), (later, 5.0)],
    );
    ok.exemplars.push(proto::Exemplar {
        labels: vec![proto::Label::new("trace_id", "4bf92f3577b34da6")],
        value: 5.0,
        timestamp: later,
    });
    let mut request = write_request(vec![
        ok,
        series(
            "rt_requests_total",
            &[("job", "api"), ("instance", "app:8080"), ("code", "500")],
            &[(base, 0.0), (later, 2.0)],
        ),
        series(
            "rt_temperature_celsius",
            &[("job", "node"), ("instance", "node:9100")],
            &[(later, 21.5)],
        ),
        series("rt_ratio", &[("job", "node")], &[(later, 0.1 + 0.2)]),
        series("rt_tiny", &[("job", "node")], &[(later, 1e-7)]),
    ]);
    request.metadata.push(proto::MetricMetadata::new(
        proto::MetricType::Counter,
        "rt_requests_total",
        "Requests served.",
        "",
    ));
    remote_write_ok(server, None, &request).await;
}

#[tokio::test]
async fn remote_write_round_trip_through_the_prometheus_api() {
    let server = TestServer::start().await;
    let base = recent_base_millis(120);
    let later = base + 15_000;
    write_data_set(&server, base).await;

    // Instant query between the two samples and at a time with milliseconds.
    let at = base + 7_000;
    assert_eq!(
        instant_query(&server, None, "rt_requests_total", at).await,
        vector_response(at, &[(OK_200, "1"), (ERR_500, "0")])
    );
    let at = later + 123;
    assert_eq!(
        instant_query(&server, None, "rt_requests_total", at).await,
        vector_response(at, &[(OK_200, "5"), (ERR_500, "2")])
    );
    // The text itself: seconds with a three-digit fraction, values as strings.
    let (_, raw, _) = api_get_raw(
        &server,
        None,
        "/api/v1/query",
        &[
            ("query", "rt_temperature_celsius"),
            ("time", &seconds_text(later + 120)),
        ],
    )
    .await;
    assert!(
        raw.contains(&format!(
            "\"value\":[{},\"21.5\"]",
            seconds_text(later + 120)
        )),
        "{raw}"
    );
    // Matchers, offset, and Prometheus' float formatting.
    assert_eq!(
        instant_query(&server, None, r#"rt_requests_total{code=~"5.."}"#, later).await,
        vector_response(later, &[(ERR_500, "2")])
    );
    assert_eq!(
        instant_query(
            &server,
            None,
            r#"rt_requests_total{code="200"} offset 15s"#,
            later
        )
        .await,
        vector_response(later, &[(OK_200, "1")])
    );
    assert_eq!(
        instant_query(&server, None, "rt_ratio", later).await,
        vector_response(later, &[(RATIO, "0.30000000000000004")])
    );
    assert_eq!(
        instant_query(&server, None, "rt_tiny", later).await,
        vector_response(later, &[(TINY, "1e-07")])
    );
    // Lookback: (t - 5m, t]; the sample at exactly t - 5m is out.
    let last_in = later + 299_999;
    assert_eq!(
        instant_query(&server, None, "rt_temperature_celsius", last_in).await,
        vector_response(last_in, &[(TEMPERATURE, "21.5")])
    );
    assert_eq!(
        instant_query(&server, None, "rt_temperature_celsius", later + 300_000).await,
        vector_response(later + 300_000, &[])
    );
    assert_eq!(
        instant_query(&server, None, "rt_temperature_celsius", later - 1).await,
        vector_response(later - 1, &[])
    );

    // Series: repeated match[] is a union, sorted by label set.
    let (status, body) = api_get(
        &server,
        None,
        "/api/v1/series",
        &[
            ("match[]", "rt_requests_total"),
            ("match[]", r#"{job="node"}"#),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "success", "data": sorted_label_sets(&[OK_200, ERR_500, TEMPERATURE, RATIO, TINY])})
    );
    // The same as a POSTed form, and with start/end that exclude everything.
    let (status, body) =
        api_post_form(&server, None, "/api/v1/series", &[("match[]", "rt_tiny")]).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "success", "data": [label_object(TINY)]})
    );
    let (_, body) = api_get(
        &server,
        None,
        "/api/v1/series",
        &[
            ("match[]", "rt_tiny"),
            ("start", "2001-01-01T00:00:00Z"),
            ("end", "2001-01-02T00:00:00Z"),
        ],
    )
    .await;
    assert_eq!(body, json!({"status": "success", "data": []}));

    // Label names and values.
    let (_, body) = api_get(&server, None, "/api/v1/labels", &[]).await;
    assert_eq!(
        body,
        json!({"status": "success", "data": ["__name__", "code", "instance", "job"]})
    );
    let (_, body) = api_get(
        &server,
        None,
        "/api/v1/labels",
        &[("match[]", "rt_temperature_celsius")],
    )
    .await;
    assert_eq!(
        body,
        json!({"status": "success", "data": ["__name__", "instance", "job"]})
    );
    let (_, body) = api_get(&server, None, "/api/v1/label/job/values", &[]).await;
    assert_eq!(body, json!({"status": "success", "data": ["api", "node"]}));
    let (_, body) = api_get(&server, None, "/api/v1/label/__name__/values", &[]).await;
    assert_eq!(
        body,
        json!({"status": "success", "data": ["rt_ratio", "rt_requests_total", "rt_temperature_celsius", "rt_tiny"]})
    );
    let (_, body) = api_get(&server, None, "/api/v1/label/job/values", &[("limit", "1")]).await;
    assert_eq!(
        body,
        json!({"status": "success", "data": ["api"], "warnings": ["results truncated due to limit"]})
    );
    let (_, body) = api_get(&server, None, "/api/v1/label/no_such_label/values", &[]).await;
    assert_eq!(body, json!({"status": "success", "data": []}));
    // Prometheus 3 clients escape label names as `U__...`.
    let (_, body) = api_get(&server, None, "/api/v1/label/U__job/values", &[]).await;
    assert_eq!(body, json!({"status": "success", "data": ["api", "node"]}));
    let (_, body) = api_get(
        &server,
        None,
        "/api/v1/series",
        &[("match[]", r#"{job="node"}"#), ("limit", "2")],
    )
    .await;
    assert_eq!(
        body,
        json!({"status": "success", "data": sorted_label_sets(&[RATIO, TEMPERATURE]), "warnings": ["results truncated due to limit"]})
    );

    // `@` pins the evaluation time of a selector; POSTed forms work like GET.
    let much_later = later + 3_600_000;
    let pinned = format!(
        "rt_requests_total{{code=\"200\"}} @ {}",
        seconds_text(later)
    );
    assert_eq!(
        instant_query(&server, None, &pinned, much_later).await,
        vector_response(much_later, &[(OK_200, "5")])
    );
    let (status, body) = api_post_form(
        &server,
        None,
        "/api/v1/query",
        &[("query", "rt_tiny"), ("time", &seconds_text(later))],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, vector_response(later, &[(TINY, "1e-07")]));

    // Metadata and exemplars.
    let (_, body) = api_get(&server, None, "/api/v1/metadata", &[]).await;
    assert_eq!(
        body,
        json!({"status": "success", "data": {"rt_requests_total": [{"type": "counter", "help": "Requests served.", "unit": ""}]}})
    );
    let (_, body) = api_get(&server, None, "/api/v1/metadata", &[("limit", "0")]).await;
    assert_eq!(body, json!({"status": "success", "data": {}}));
    let (_, body) = api_get(&server, None, "/api/v1/metadata", &[("metric", "rt_tiny")]).await;
    assert_eq!(body, json!({"status": "success", "data": {}}));
    let (_, body) = api_get(
        &server,
        None,
        "/api/v1/query_exemplars",
        &[
            ("query", "rt_requests_total"),
            ("start", &seconds_text(base)),
            ("end", &seconds_text(later + 1_000)),
        ],
    )
    .await;
    assert_eq!(
        body,
        json!({"status": "success", "data": [{
            "seriesLabels": label_object(OK_200),
            "exemplars": [{"labels": {"trace_id": "4bf92f3577b34da6"}, "value": "5", "timestamp": prom_time(later)}]
        }]})
    );

    // Build info and the status page.
    let (status, body) = api_get(&server, None, "/api/v1/status/buildinfo", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "success");
    assert!(
        body["data"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{body}"
    );
    let page = server
        .client
        .get(server.url("/"))
        .send()
        .await
        .expect("status page");
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap_or_default();
    assert!(
        page.contains("Sightline") && page.contains("default"),
        "{page}"
    );
}

#[tokio::test]
async fn prometheus_api_errors_name_the_problem() {
    let server = TestServer::start().await;
    let expect_bad_data = |(status, body): (u16, Value), wanted: &str| {
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["status"], "error", "{body}");
        assert_eq!(body["errorType"], "bad_data", "{body}");
        let message = body["error"].as_str().unwrap_or_default().to_string();
        assert!(
            message.contains(wanted),
            "{message:?} should contain {wanted:?}"
        );
    };
    expect_bad_data(
        api_get(&server, None, "/api/v1/series", &[]).await,
        "no match[] parameter provided",
    );
    expect_bad_data(
        api_get(&server, None, "/api/v1/series", &[("match[]", "up{")]).await,
        "invalid parameter \"match[]\"",
    );
    expect_bad_data(
        api_get(&server, None, "/api/v1/query", &[("query", "sum(up")]).await,
        "invalid parameter \"query\"",
    );
    // PromQL beyond plain selectors is answered (it was refused before the engine).
    let (status, body) = api_get(&server, None, "/api/v1/query", &[("query", "sum(up)")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "data": {"resultType": "vector", "result": []}})
    );
    expect_bad_data(
        api_get(
            &server,
            None,
            "/api/v1/query",
            &[("query", "up"), ("time", "yesterday")],
        )
        .await,
        "invalid parameter \"time\": Invalid time value for 'time': cannot parse \"yesterday\" to a valid timestamp",
    );
    expect_bad_data(
        api_get(&server, None, "/api/v1/labels", &[("limit", "-1")]).await,
        "invalid parameter \"limit\": limit must be non-negative",
    );
    // A tenant that never wrote gets empty results, not an error.
    let (status, body) = api_get(&server, Some("nobody"), "/api/v1/labels", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "success", "data": []}));
}

#[tokio::test]
async fn special_values_and_staleness_markers() {
    let server = TestServer::start().await;
    let base = recent_base_millis(60);
    let stale_nan = f64::from_bits(0x7ff0_0000_0000_0002);
    remote_write_ok(
        &server,
        None,
        &write_request(vec![
            series("sv_value", &[("kind", "nan")], &[(base, f64::NAN)]),
            series("sv_value", &[("kind", "pos_inf")], &[(base, f64::INFINITY)]),
            series(
                "sv_value",
                &[("kind", "neg_inf")],
                &[(base, f64::NEG_INFINITY)],
            ),
            series("sv_stale", &[], &[(base - 10_000, 3.0), (base, stale_nan)]),
        ]),
    )
    .await;
    let at = base + 1_000;
    assert_eq!(
        instant_query(&server, None, "sv_value", at).await,
        vector_response(
            at,
            &[
                (&[("__name__", "sv_value"), ("kind", "nan")], "NaN"),
                (&[("__name__", "sv_value"), ("kind", "neg_inf")], "-Inf"),
                (&[("__name__", "sv_value"), ("kind", "pos_inf")], "+Inf"),
            ]
        )
    );
    // A series whose latest sample is the staleness marker is gone from instant queries…
    assert_eq!(
        instant_query(&server, None, "sv_stale", at).await,
        vector_response(at, &[])
    );
    // …but present before it.
    assert_eq!(
        instant_query(&server, None, "sv_stale", base - 1).await,
        vector_response(base - 1, &[(&[("__name__", "sv_stale")], "3")])
    );
}
