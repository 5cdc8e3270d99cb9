//! The manager against a real HTTP target on loopback (a minimal HTTP/1.1 responder),
//! with a sink that records what it is given.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use sightline_model::{WriteRequest, is_stale_nan};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::ACCEPT_HEADER;

#[derive(Debug, Default)]
struct RecordingSink {
    requests: Mutex<Vec<(String, WriteRequest)>>,
}

impl ScrapeSink for RecordingSink {
    async fn append(
        &self,
        tenant: String,
        request: WriteRequest,
    ) -> std::result::Result<(), String> {
        self.requests.lock().unwrap().push((tenant, request));
        Ok(())
    }
}

impl RecordingSink {
    /// Every `(value, is stale)` written for the series named `name` so far.
    fn values(&self, name: &str) -> Vec<f64> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, r)| r.series.iter())
            .filter(|s| s.labels.metric_name() == Some(name))
            .flat_map(|s| s.samples.iter().map(|sample| sample.value))
            .collect()
    }
}

/// What the target serves and what it was asked.
#[derive(Debug, Default)]
struct TargetState {
    body: String,
    gzip: bool,
    requests: Vec<String>,
}

/// Serves `state` on a loopback port; returns the address.
async fn serve(state: Arc<Mutex<TargetState>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let (body, gzip) = {
                    let mut state = state.lock().unwrap();
                    state
                        .requests
                        .push(String::from_utf8_lossy(&request).into_owned());
                    (state.body.clone(), state.gzip)
                };
                let (body, encoding) = if gzip {
                    let mut encoder =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    encoder.write_all(body.as_bytes()).unwrap();
                    (encoder.finish().unwrap(), "Content-Encoding: gzip\r\n")
                } else {
                    (body.into_bytes(), "")
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n{encoding}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    address
}

async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn options() -> ManagerOptions {
    ManagerOptions {
        file_sd_poll_interval: Duration::from_millis(100),
        ..ManagerOptions::default()
    }
}

#[tokio::test]
async fn scrapes_a_static_target_with_auth_and_gzip() {
    let state = Arc::new(Mutex::new(TargetState {
        body: "# TYPE m gauge\nm{a=\"b\"} 42\n".to_string(),
        gzip: true,
        ..TargetState::default()
    }));
    let address = serve(Arc::clone(&state)).await;
    let yaml = format!(
        "- job_name: t\n  scrape_interval: 200ms\n  bearer_token: tok\n  params: {{x: [y]}}\n  tenant: team\n  static_configs: [{{targets: ['{address}']}}]\n"
    );
    let configs: Vec<ScrapeConfig> = serde_saphyr::from_str(&yaml).unwrap();
    let sink = Arc::new(RecordingSink::default());
    let manager = ScrapeManager::start(configs, Arc::clone(&sink), options()).unwrap();
    wait_for("two scrapes", || sink.values("up").len() >= 2).await;
    assert_eq!(sink.values("up")[0], 1.0);
    assert_eq!(sink.values("m")[0], 42.0);
    assert_eq!(manager.stats().targets().get("t"), Some(&1));
    assert!(manager.stats().scrapes_total() >= 2);
    let request = state.lock().unwrap().requests[0].to_lowercase();
    assert!(request.starts_with("get /metrics?x=y "), "{request}");
    assert!(request.contains("authorization: bearer tok"), "{request}");
    assert!(
        request.contains(&format!("accept: {}", ACCEPT_HEADER.to_lowercase())),
        "{request}"
    );
    assert!(
        request.contains("x-prometheus-scrape-timeout-seconds: 0.2"),
        "{request}"
    );
    assert_eq!(sink.requests.lock().unwrap()[0].0, "team");

    // The series disappears: a staleness marker.
    state.lock().unwrap().body = "other 1\n".to_string();
    wait_for("a stale marker for m", || {
        sink.values("m").iter().any(|v| is_stale_nan(*v))
    })
    .await;
    manager.stop().await;
}

#[tokio::test]
async fn file_sd_targets_come_and_go() {
    let state = Arc::new(Mutex::new(TargetState {
        body: "m 1\n".to_string(),
        ..TargetState::default()
    }));
    let address = serve(Arc::clone(&state)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets.json");
    std::fs::write(&file, "[]").unwrap();
    let yaml = format!(
        "- job_name: f\n  scrape_interval: 100ms\n  file_sd_configs: [{{files: ['{}/*.json']}}]\n",
        dir.path().display()
    );
    let configs: Vec<ScrapeConfig> = serde_saphyr::from_str(&yaml).unwrap();
    let sink = Arc::new(RecordingSink::default());
    let manager = ScrapeManager::start(configs, Arc::clone(&sink), options()).unwrap();
    std::fs::write(
        &file,
        format!(r#"[{{"targets": ["{address}"], "labels": {{"env": "x"}}}}]"#),
    )
    .unwrap();
    wait_for("the file's target to be scraped", || {
        !sink.values("m").is_empty()
    })
    .await;
    let labels = sink
        .requests
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, r)| r.series.iter())
        .find(|s| s.labels.metric_name() == Some("m"))
        .map(|s| s.labels.clone())
        .unwrap();
    assert_eq!(labels.get("env"), Some("x"));
    assert_eq!(labels.get("job"), Some("f"));
    assert_eq!(labels.get("instance"), Some(address.to_string().as_str()));
    assert!(labels.get("__meta_filepath").is_none());
    std::fs::write(&file, "[]").unwrap();
    wait_for("end-of-run staleness markers", || {
        sink.values("m").iter().any(|v| is_stale_nan(*v))
            && sink.values("up").iter().any(|v| is_stale_nan(*v))
    })
    .await;
    manager.stop().await;
}

#[tokio::test]
async fn an_unreachable_target_is_down() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let yaml = format!(
        "- {{job_name: d, scrape_interval: 100ms, static_configs: [{{targets: ['{address}']}}]}}"
    );
    let configs: Vec<ScrapeConfig> = serde_saphyr::from_str(&yaml).unwrap();
    let sink = Arc::new(RecordingSink::default());
    let manager = ScrapeManager::start(configs, Arc::clone(&sink), options()).unwrap();
    wait_for("up = 0", || sink.values("up").contains(&0.0)).await;
    assert!(manager.stats().scrape_failures_total() >= 1);
    manager.stop().await;
}

#[tokio::test]
async fn duplicate_job_names_are_refused() {
    let configs: Vec<ScrapeConfig> =
        serde_saphyr::from_str("- {job_name: a}\n- {job_name: a}\n").unwrap();
    let error =
        ScrapeManager::start(configs, Arc::new(RecordingSink::default()), options()).unwrap_err();
    assert!(error.to_string().contains("\"a\""), "{error}");
}
