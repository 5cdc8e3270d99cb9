//! Scraping end to end: the test serves a target on loopback whose body it changes,
//! the real binary scrapes it every second, and the test reads the results back
//! through `/api/v1/query` (plain selectors), polling until they hold.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::client::{api_get, instant_query, now_millis, seconds_text, wait_until};
use crate::server::TestServer;

/// How long a scrape-driven condition may take (scrapes run every second).
const SCRAPE_DEADLINE: Duration = Duration::from_secs(30);

/// What the target answers: a body, or 503 while `down`.
#[derive(Debug, Default)]
struct TargetBody {
    text: String,
    down: bool,
}

/// A minimal HTTP/1.1 target on a loopback port, served by a thread.
struct Target {
    address: SocketAddr,
    body: Arc<Mutex<TargetBody>>,
}

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

impl Target {
    fn start(text: &str) -> Target {
        Target::start_with_content_type(text, PROMETHEUS_TEXT)
    }

    fn start_with_content_type(text: &str, content_type: &'static str) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
        let address = listener.local_addr().expect("target address");
        let body = Arc::new(Mutex::new(TargetBody {
            text: text.to_string(),
            down: false,
        }));
        let shared = Arc::clone(&body);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let (status, text) = {
                    let body = shared.lock().expect("target body");
                    if body.down {
                        ("503 Service Unavailable", String::new())
                    } else {
                        ("200 OK", body.text.clone())
                    }
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Target { address, body }
    }

    fn set(&self, text: &str) {
        self.body.lock().expect("target body").text = text.to_string();
    }

    fn set_down(&self, down: bool) {
        self.body.lock().expect("target body").down = down;
    }
}

/// `(labels, value)` of each series an instant selector returns now.
async fn select(server: &TestServer, selector: &str) -> Vec<(Value, String)> {
    let response = instant_query(server, None, selector, now_millis()).await;
    response["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|sample| {
            let value = sample["value"][1].as_str().unwrap_or_default().to_string();
            (sample["metric"].clone(), value)
        })
        .collect()
}

/// The single value `selector` returns now, if exactly one series matches.
async fn single_value(server: &TestServer, selector: &str) -> Option<String> {
    let mut found = select(server, selector).await;
    (found.len() == 1).then(|| found.remove(0).1)
}

async fn wait_for_value(server: &TestServer, selector: &str, want: &str) {
    wait_until(
        &format!("{selector} == {want}"),
        SCRAPE_DEADLINE,
        || async { single_value(server, selector).await.as_deref() == Some(want) },
    )
    .await;
}

async fn wait_for_absent(server: &TestServer, selector: &str) {
    wait_until(
        &format!("{selector} to be absent"),
        SCRAPE_DEADLINE,
        || async { select(server, selector).await.is_empty() },
    )
    .await;
}

#[tokio::test]
async fn a_scraped_target_is_stored_relabeled_and_goes_stale() {
    let target = Target::start("# TYPE sc_a gauge\nsc_a{k=\"v\"} 3\nsc_b 1\nsc_drop_me 5\n");
    let config = format!(
        r#"
scrape_configs:
  - job_name: e2e
    scrape_interval: 1s
    static_configs:
      - targets: ['{address}']
        labels: {{team: blue}}
    relabel_configs:
      - {{source_labels: [team], regex: blue, action: keep}}
    metric_relabel_configs:
      - {{source_labels: [__name__], regex: 'sc_drop_.*', action: drop}}
  - job_name: limited
    scrape_interval: 1s
    sample_limit: 2
    static_configs:
      - targets: ['{address}']
  - job_name: honoring
    scrape_interval: 1s
    honor_labels: true
    metric_relabel_configs:
      - {{source_labels: [__name__], regex: sc_a, action: keep}}
    static_configs:
      - targets: ['{address}']
        labels: {{k: from_target, extra: x}}
  - job_name: dropped
    scrape_interval: 1s
    static_configs:
      - targets: ['{address}']
        labels: {{team: red}}
    relabel_configs:
      - {{source_labels: [team], regex: blue, action: keep}}
"#,
        address = target.address
    );
    let server = TestServer::start_with_config(Some(&config)).await;
    let instance = target.address.to_string();

    wait_for_value(&server, "up{job=\"e2e\"}", "1").await;
    wait_for_value(&server, "sc_a{job=\"e2e\"}", "3").await;
    let series = select(&server, "sc_a{job=\"e2e\"}").await;
    assert_eq!(
        series[0].0,
        serde_json::json!({"__name__": "sc_a", "job": "e2e", "instance": instance, "k": "v", "team": "blue"})
    );
    assert_eq!(
        single_value(&server, "scrape_samples_scraped{job=\"e2e\"}")
            .await
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        single_value(
            &server,
            "scrape_samples_post_metric_relabeling{job=\"e2e\"}"
        )
        .await
        .as_deref(),
        Some("2")
    );
    assert!(
        single_value(&server, "scrape_duration_seconds{job=\"e2e\"}")
            .await
            .is_some()
    );
    assert!(
        single_value(&server, "scrape_series_added{job=\"e2e\"}")
            .await
            .is_some()
    );
    // Over sample_limit: the scrape fails and nothing of it is stored.
    wait_for_value(&server, "up{job=\"limited\"}", "0").await;
    assert!(select(&server, "sc_b{job=\"limited\"}").await.is_empty());
    // honor_labels: the exposed k wins over the target's.
    wait_for_value(&server, "sc_a{job=\"honoring\"}", "3").await;
    let honored = select(&server, "sc_a{job=\"honoring\"}").await;
    assert_eq!(honored[0].0["k"], "v");
    assert_eq!(honored[0].0["extra"], "x");
    assert!(
        select(&server, "sc_drop_me").await.is_empty(),
        "metric_relabel_configs drop"
    );
    assert!(
        select(&server, "up{job=\"dropped\"}").await.is_empty(),
        "relabel_configs keep"
    );

    // A series the target stops exposing gets a staleness marker.
    target.set("# TYPE sc_a gauge\nsc_a{k=\"v\"} 4\n");
    wait_for_absent(&server, "sc_b{job=\"e2e\"}").await;
    wait_for_value(&server, "sc_a{job=\"e2e\"}", "4").await;

    // The target failing: up = 0 and its series go stale.
    target.set_down(true);
    wait_for_value(&server, "up{job=\"e2e\"}", "0").await;
    wait_for_absent(&server, "sc_a{job=\"e2e\"}").await;
    target.set_down(false);
    wait_for_value(&server, "up{job=\"e2e\"}", "1").await;

    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    assert!(
        metrics.contains("sightline_scrape_targets{job=\"e2e\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sightline_scrape_failures_total "),
        "{metrics}"
    );
}

#[tokio::test]
async fn file_sd_targets_are_added_and_removed_at_runtime() {
    let target = Target::start("fsd_metric 1\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("targets.json");
    std::fs::write(&file, "[]").expect("write file_sd file");
    let config = format!(
        r#"
scrape_configs:
  - job_name: fsd
    scrape_interval: 1s
    file_sd_configs:
      - files: ['{}/*.json']
"#,
        dir.path().display()
    );
    let server = TestServer::start_with_config(Some(&config)).await;
    std::fs::write(
        &file,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"zone": "z1"}}}}]"#,
            target.address
        ),
    )
    .expect("write file_sd file");
    wait_for_value(&server, "up{job=\"fsd\", zone=\"z1\"}", "1").await;
    wait_for_value(&server, "fsd_metric", "1").await;
    std::fs::write(&file, "[]").expect("write file_sd file");
    wait_for_absent(&server, "up{job=\"fsd\"}").await;
    wait_for_absent(&server, "fsd_metric").await;
}

#[tokio::test]
async fn openmetrics_exemplars_and_metadata_are_stored() {
    let target = Target::start_with_content_type(
        "# TYPE om_requests counter\n# HELP om_requests Requests served.\n\
         om_requests_total{code=\"200\"} 5 # {trace_id=\"4bf92f35\"} 1.5\n\
         om_requests_created{code=\"200\"} 1700000000.5\n# EOF\n",
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    );
    let config = format!(
        "scrape_configs:\n  - job_name: om\n    scrape_interval: 1s\n    static_configs: [{{targets: ['{}']}}]\n",
        target.address
    );
    let started = now_millis();
    let server = TestServer::start_with_config(Some(&config)).await;
    wait_for_value(&server, "om_requests_total", "5").await;
    // `_created` is an ordinary series, as in Prometheus 2.42.
    wait_for_value(&server, "om_requests_created", "1700000000.5").await;
    let (status, body) = api_get(
        &server,
        None,
        "/api/v1/query_exemplars",
        &[
            ("query", "om_requests_total"),
            ("start", &seconds_text(started - 1_000)),
            ("end", &seconds_text(now_millis() + 1_000)),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let exemplar = &body["data"][0]["exemplars"][0];
    assert_eq!(exemplar["labels"]["trace_id"], "4bf92f35", "{body}");
    assert_eq!(exemplar["value"], "1.5", "{body}");
    let (_, body) = api_get(
        &server,
        None,
        "/api/v1/metadata",
        &[("metric", "om_requests")],
    )
    .await;
    assert_eq!(body["data"]["om_requests"][0]["type"], "counter", "{body}");
    assert_eq!(
        body["data"]["om_requests"][0]["help"], "Requests served.",
        "{body}"
    );
}
