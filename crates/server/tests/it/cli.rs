//! `sightline config check`, self-monitoring (`/metrics`) and the health endpoints.

use std::process::Command;
use std::time::Duration;

use crate::client::{
    exposition_sum, recent_base_millis, remote_write_ok, series, wait_until, write_request,
};
use crate::server::TestServer;

/// Runs `sightline config check FILE` with `yaml` in FILE: exit code and all output.
fn config_check(yaml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sightline.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let output = Command::new(crate::server::binary_under_test())
        .args(["config", "check"])
        .arg(&path)
        .output()
        .expect("run sightline config check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn config_check_accepts_a_good_file_and_names_the_line_of_a_bad_one() {
    let (code, output) = config_check(
        "data_dir: /var/lib/sightline\nserver:\n  listen: 0.0.0.0:9700\nstorage:\n  metrics:\n    retention_time: 30d\n",
    );
    assert_eq!(code, 0, "{output}");

    let (code, output) = config_check("server:\n  listen: 0.0.0.0:9700\n  no_such_option: 1\n");
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("no_such_option"), "{output}");
    assert!(
        output.contains("line 3") || output.contains(":3:"),
        "the error should name line 3: {output}"
    );

    let (code, output) = config_check("storage:\n  metrics:\n    retention_time: soon\n");
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("soon"), "{output}");
    assert!(
        output.contains("line 3") || output.contains(":3:"),
        "the error should name line 3: {output}"
    );

    let (code, output) = config_check("server:\n  max_request_body_bytes: 0\n");
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("server.max_request_body_bytes"), "{output}");
}

async fn samples_received(server: &TestServer) -> Option<f64> {
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .ok()?;
    let text = response.text().await.ok()?;
    exposition_sum(&text, "sightline_samples_received_total")
}

#[tokio::test]
async fn self_metrics_and_health() {
    let server = TestServer::start().await;
    let healthy = server
        .client
        .get(server.url("/-/healthy"))
        .send()
        .await
        .expect("/-/healthy");
    assert_eq!(healthy.status().as_u16(), 200);
    let healthy = server
        .client
        .get(server.otlp_http_url("/-/healthy"))
        .send()
        .await
        .expect("/-/healthy on the OTLP listener");
    assert_eq!(healthy.status().as_u16(), 200);

    let before = samples_received(&server)
        .await
        .expect("/metrics has sightline_samples_received_total");
    let base = recent_base_millis(60);
    remote_write_ok(
        &server,
        None,
        &write_request(vec![series(
            "cm_value",
            &[],
            &(0..10).map(|i| (base + i, 1.0)).collect::<Vec<_>>(),
        )]),
    )
    .await;
    wait_until(
        "sightline_samples_received_total to count 10 more samples",
        Duration::from_secs(10),
        || async { samples_received(&server).await.unwrap_or(0.0) >= before + 10.0 },
    )
    .await;

    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        text.contains("# TYPE sightline_samples_received_total counter"),
        "{text}"
    );
}
