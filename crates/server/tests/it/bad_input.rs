//! Malformed and oversized writes are refused with the right status and a message that
//! names the problem; the server keeps serving and keeps what it accepted before.

use sightline_ingest::remote_write::proto;

use crate::client::{
    instant_query, post_remote_write_body, recent_base_millis, remote_write, remote_write_ok,
    series, vector_response, write_request,
};
use crate::server::TestServer;

// Small limits so an oversized body still fits the socket buffers: a server that
// refuses by Content-Length without reading the body resets the connection, and a client
// still writing a large body sees that reset instead of the 413.
const MAX_BODY: usize = 16 * 1024;
const MAX_DECOMPRESSED: usize = 64 * 1024;

const CONFIG: &str = "\
server:
  max_request_body_bytes: 16384
  max_decompressed_body_bytes: 65536
limits:
  ingestion_rate_samples_per_second: 100
  ingestion_burst_samples: 500
";

fn assert_refused(what: &str, (status, body): (u16, String), wanted_status: u16, wanted: &[&str]) {
    assert_eq!(
        status, wanted_status,
        "{what}: unexpected status; body: {body}"
    );
    let lower = body.to_lowercase();
    for word in wanted {
        assert!(
            lower.contains(&word.to_lowercase()),
            "{what}: message {body:?} should mention {word:?}"
        );
    }
}

#[tokio::test]
async fn bad_writes_are_refused_and_the_server_keeps_going() {
    let server = TestServer::start_with_config(Some(CONFIG)).await;
    let base = recent_base_millis(60);
    let good = write_request(vec![series("bi_ok", &[("job", "x")], &[(base, 1.0)])]);
    remote_write_ok(&server, None, &good).await;

    assert_refused(
        "bad snappy",
        post_remote_write_body(&server, None, b"this is not snappy at all".to_vec()).await,
        400,
        &["snappy"],
    );
    let not_protobuf = snap::raw::Encoder::new()
        .compress_vec(b"\xff\xff\xff\xff this is not protobuf")
        .expect("snappy");
    assert_refused(
        "bad protobuf",
        post_remote_write_body(&server, None, not_protobuf).await,
        400,
        &["protobuf"],
    );
    let no_labels = proto::TimeSeries {
        samples: vec![proto::Sample {
            value: 1.0,
            timestamp: base,
        }],
        ..Default::default()
    };
    assert_refused(
        "empty label set",
        remote_write(&server, None, &write_request(vec![no_labels])).await,
        400,
        &["empty"],
    );
    let mut duplicate = series("bi_dup", &[("job", "a")], &[(base, 1.0)]);
    duplicate.labels.push(proto::Label::new("job", "b"));
    assert_refused(
        "duplicate label",
        remote_write(&server, None, &write_request(vec![duplicate])).await,
        400,
        &["job"],
    );
    let mut bad_utf8 = series("bi_utf8", &[], &[(base, 1.0)]);
    bad_utf8.labels.push(proto::Label {
        name: b"path".to_vec(),
        value: vec![b'a', 0xff, 0xfe],
    });
    assert_refused(
        "invalid UTF-8 label value",
        remote_write(&server, None, &write_request(vec![bad_utf8])).await,
        400,
        &["utf-8", "path"],
    );

    // Over server.max_request_body_bytes as sent.
    let oversized: Vec<u8> = (0..MAX_BODY + 1024)
        .map(|i| (i * 7919 % 251) as u8)
        .collect();
    assert_refused(
        "body over the size limit",
        post_remote_write_body(&server, None, oversized).await,
        413,
        &["max_request_body_bytes"],
    );
    // Small as sent, huge once decompressed.
    let bomb = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 4 * MAX_DECOMPRESSED])
        .expect("snappy");
    assert!(bomb.len() < MAX_BODY, "the bomb must pass the body limit");
    assert_refused(
        "decompression bomb",
        post_remote_write_body(&server, None, bomb).await,
        413,
        &["max_decompressed"],
    );

    // Rate limits, in a tenant of their own: one request over the burst, then two
    // that together drain the bucket faster than it refills.
    let many = |count: i64, start: i64| {
        write_request(vec![series(
            "bi_rate",
            &[],
            &(0..count).map(|i| (start + i, 1.0)).collect::<Vec<_>>(),
        )])
    };
    assert_refused(
        "request over the burst",
        remote_write(&server, Some("limited"), &many(600, base)).await,
        400,
        &["ingestion_burst_samples"],
    );
    remote_write_ok(&server, Some("limited"), &many(400, base)).await;
    assert_refused(
        "rate limit",
        remote_write(&server, Some("limited"), &many(400, base + 400)).await,
        429,
        &["ingestion_rate_samples_per_second"],
    );

    // Samples the store cannot keep are reported, not silently dropped.
    let future = series("bi_future", &[], &[(base + 3_600_000, 1.0)]);
    assert_refused(
        "sample too far in the future",
        remote_write(&server, None, &write_request(vec![future])).await,
        400,
        &["future"],
    );

    // Still serving, still holding what was accepted, and nothing of what was refused.
    let at = base + 1_000;
    assert_eq!(
        instant_query(&server, None, "bi_ok", at).await,
        vector_response(at, &[(&[("__name__", "bi_ok"), ("job", "x")], "1")])
    );
    for refused in ["bi_dup", "bi_utf8", "bi_future"] {
        assert_eq!(
            instant_query(&server, None, refused, at).await,
            vector_response(at, &[]),
            "{refused} must not be stored"
        );
    }
    remote_write_ok(
        &server,
        None,
        &write_request(vec![series("bi_after", &[], &[(base, 2.0)])]),
    )
    .await;
}
