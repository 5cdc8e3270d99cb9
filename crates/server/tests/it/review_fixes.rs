//! The real binary after the review fixes: the tenant limit and reserved tenant names,
//! requests larger than the burst answered 400 (never retried), oversized exemplars
//! dropped with their samples kept, and hostile timestamps refused without a panic.

use sightline_ingest::remote_write::proto;

use crate::client::{
    api_get_raw, recent_base_millis, remote_write, remote_write_ok, series, write_request,
};
use crate::server::TestServer;

const CONFIG: &str = "\
limits:
  max_tenants: 2
  ingestion_rate_samples_per_second: 50
  ingestion_burst_samples: 50
";

#[tokio::test]
async fn review_fixes_hold_in_the_real_binary() {
    let server = TestServer::start_with_config(Some(CONFIG)).await;
    let base = recent_base_millis(60);
    let one = |name: &str| write_request(vec![series(name, &[], &[(base, 1.0)])]);

    // Reserved names never reach the data dir.
    for reserved in ["LOCK", ".hidden"] {
        let (status, body) = remote_write(&server, Some(reserved), &one("rf_up")).await;
        assert_eq!(status, 400, "{reserved}: {body}");
        assert!(body.contains("invalid tenant id"), "{body}");
    }

    // Two tenants fit; a third is refused with the limit named, and the first two
    // keep working.
    remote_write_ok(&server, Some("t1"), &one("rf_up")).await;
    remote_write_ok(&server, Some("t2"), &one("rf_up")).await;
    let (status, body) = remote_write(&server, Some("t3"), &one("rf_up")).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("limits.max_tenants=2"), "{body}");
    remote_write_ok(&server, Some("t1"), &one("rf_again")).await;

    // More samples than the burst: 400 naming the limit (Prometheus does not retry).
    let many = write_request(vec![series(
        "rf_many",
        &[],
        &(0..60).map(|i| (base + i, 1.0)).collect::<Vec<_>>(),
    )]);
    let (status, body) = remote_write(&server, Some("t1"), &many).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("limits.ingestion_burst_samples"), "{body}");

    // An exemplar with labels over 128 characters is dropped; its sample is kept.
    let mut with_exemplar = series("rf_exemplar", &[], &[(base + 1, 2.0)]);
    with_exemplar.exemplars.push(proto::Exemplar {
        labels: vec![proto::Label::new("trace_id", "x".repeat(300))],
        value: 2.0,
        timestamp: base + 1,
    });
    remote_write_ok(&server, Some("t2"), &write_request(vec![with_exemplar])).await;

    // Admin flush works with --enable-admin-api (which TestServer passes).
    let response = server
        .client
        .post(server.url("/api/sightline/v1/admin/flush"))
        .send()
        .await
        .expect("flush");
    assert_eq!(response.status().as_u16(), 200);

    // Hostile RFC 3339 years: a clean 400, and the server keeps serving.
    let huge = format!("{}-01-01T00:00:00Z", "9".repeat(60));
    let (status, body, _) = api_get_raw(
        &server,
        Some("t1"),
        "/api/v1/query",
        &[("query", "up"), ("time", &huge)],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("to a valid timestamp"), "{body}");
    let ready = server
        .client
        .get(server.url("/-/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status().as_u16(), 200, "{}", server.logs());
}
