//! An acknowledged write survives a SIGKILL, a clean shutdown, and a flush to blocks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sightline_ingest::remote_write::{encode_request, proto};

use crate::client::{
    exposition_sum, instant_query, recent_base_millis, remote_write_ok, series, wait_until,
    write_request,
};
use crate::server::TestServer;

const BATCHES: usize = 200;
const SLOTS: usize = 50;

/// Batch `batch`: one sample for each of the `SLOTS` series `dur_sample{slot}` at
/// `base + batch s`, valued `batch * SLOTS + slot` so every sample is unique.
fn batch_request(metric: &str, base: i64, batch: usize) -> proto::WriteRequest {
    let timestamp = batch_time(base, batch);
    write_request(
        (0..SLOTS)
            .map(|slot| {
                series(
                    metric,
                    &[("slot", &slot.to_string())],
                    &[(timestamp, (batch * SLOTS + slot) as f64)],
                )
            })
            .collect(),
    )
}

fn batch_time(base: i64, batch: usize) -> i64 {
    base + i64::try_from(batch).expect("small") * 1_000
}

/// The value of each slot an instant query of `metric` sees at the time of `batch`.
async fn slot_values(
    server: &TestServer,
    metric: &str,
    base: i64,
    batch: usize,
) -> BTreeMap<usize, f64> {
    let response = instant_query(server, None, metric, batch_time(base, batch)).await;
    let mut values = BTreeMap::new();
    for sample in response["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let slot: usize = sample["metric"]["slot"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("slot label");
        let value: f64 = sample["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("sample value");
        values.insert(slot, value);
    }
    values
}

fn batch_values(batch: usize) -> BTreeMap<usize, f64> {
    (0..SLOTS)
        .map(|slot| (slot, (batch * SLOTS + slot) as f64))
        .collect()
}

/// Every batch in `0..batches` is fully there.
async fn assert_batches_present(server: &TestServer, metric: &str, base: i64, batches: usize) {
    for batch in 0..batches {
        let found = slot_values(server, metric, base, batch).await;
        assert_eq!(
            found,
            batch_values(batch),
            "acknowledged batch {batch} of {batches} is not intact\n{}",
            server.logs()
        );
    }
}

#[tokio::test]
async fn every_acknowledged_sample_survives_sigkill_mid_stream() {
    let mut server = TestServer::start().await;
    let base = recent_base_millis(300);
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writer = {
        let acknowledged = Arc::clone(&acknowledged);
        let client = server.client.clone();
        let url = server.url("/api/v1/write");
        tokio::spawn(async move {
            for batch in 0..BATCHES {
                let body = encode_request(&batch_request("dur_sample", base, batch));
                let sent = client
                    .post(&url)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().as_u16() == 204 => {
                        acknowledged.store(batch + 1, Ordering::SeqCst);
                    }
                    Ok(response) => {
                        let status = response.status();
                        let text = response.text().await.unwrap_or_default();
                        return Err(format!("batch {batch} refused with {status}: {text}"));
                    }
                    // The server was killed under us: expected.
                    Err(_) => return Ok(()),
                }
            }
            Ok(())
        })
    };
    wait_until("60 acknowledged batches", Duration::from_secs(30), || {
        let acknowledged = Arc::clone(&acknowledged);
        async move { acknowledged.load(Ordering::SeqCst) >= 60 }
    })
    .await;
    server.kill9();
    let writer_result = writer.await.expect("writer task");
    assert_eq!(writer_result, Ok(()), "writer failed before the kill");
    let acked = acknowledged.load(Ordering::SeqCst);
    assert!(
        acked < BATCHES,
        "the writer finished before the kill; the test did not kill mid-stream"
    );

    server.restart().await;
    assert_batches_present(&server, "dur_sample", base, acked).await;
    // The batch in flight at the kill is all there or not at all.
    let in_flight = slot_values(&server, "dur_sample", base, acked).await;
    assert!(
        in_flight == batch_values(acked) || in_flight == batch_values(acked - 1),
        "batch {acked} (in flight at the kill) is partially stored: {in_flight:?}"
    );
    // And the server takes writes again after the crash.
    remote_write_ok(&server, None, &batch_request("dur_sample", base, BATCHES)).await;
}

#[tokio::test]
async fn clean_shutdown_keeps_everything() {
    let mut server = TestServer::start().await;
    let base = recent_base_millis(120);
    for batch in 0..5 {
        remote_write_ok(&server, None, &batch_request("dur_clean", base, batch)).await;
    }
    let status = server.terminate().await;
    assert!(
        status.success(),
        "SIGTERM exit status {status}\n{}",
        server.logs()
    );
    server.restart().await;
    assert_batches_present(&server, "dur_clean", base, 5).await;
}

#[tokio::test]
async fn flushed_data_is_read_back_from_blocks_after_sigkill() {
    let mut server = TestServer::start().await;
    let base = recent_base_millis(120);
    for batch in 0..5 {
        remote_write_ok(&server, None, &batch_request("dur_flush", base, batch)).await;
    }
    let response = server
        .client
        .post(server.url("/api/sightline/v1/admin/flush"))
        .send()
        .await
        .expect("admin flush");
    assert_eq!(
        response.status().as_u16(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let blocks = blocks_reported(&server).await;
    assert!(
        blocks >= 1.0,
        "flush wrote no block (sightline_blocks = {blocks})"
    );

    server.kill9();
    server.restart().await;
    let blocks = blocks_reported(&server).await;
    assert!(
        blocks >= 1.0,
        "blocks not loaded after restart (sightline_blocks = {blocks})"
    );
    assert_batches_present(&server, "dur_flush", base, 5).await;
    // Writes after the flush and the crash work and are kept too.
    remote_write_ok(&server, None, &batch_request("dur_flush", base, 5)).await;
    server.kill9();
    server.restart().await;
    assert_batches_present(&server, "dur_flush", base, 6).await;
}

/// `sightline_blocks` summed over tenants, from `/metrics`.
async fn blocks_reported(server: &TestServer) -> f64 {
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .unwrap_or_default();
    exposition_sum(&text, "sightline_blocks").unwrap_or(0.0)
}
