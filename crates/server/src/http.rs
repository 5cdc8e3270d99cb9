//! Router assembly: the main listener (Prometheus API and UI from [`crate::api`],
//! ingest, self-observability, admin) and the dedicated OTLP/HTTP listener.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::{ApiError, ErrorKind};
use crate::self_metrics::{metrics_handler, track_http};
use crate::state::AppState;
use crate::tenant::{TENANT_HEADER, tenant_from_headers};

/// Everything served on `server.listen`.
pub(crate) fn main_router(state: AppState) -> Router {
    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics_handler))
        .route("/api/sightline/v1/admin/flush", post(admin_flush))
        .merge(crate::ingest_http::routes())
        .merge(crate::api::routes())
        .route_layer(from_fn_with_state(state.clone(), track_http))
        .fallback(not_found)
        .with_state(state)
}

/// Everything served on `server.otlp_http_listen`: OTLP/HTTP and health.
pub(crate) fn otlp_http_router(state: AppState) -> Router {
    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .merge(crate::ingest_http::otlp_routes())
        .route_layer(from_fn_with_state(state.clone(), track_http))
        .fallback(not_found)
        .with_state(state)
}

/// `GET /-/healthy`: 200 as soon as the process serves HTTP (also during WAL replay).
async fn healthy() -> &'static str {
    "Sightline is Healthy.\n"
}

/// `GET /-/ready`: 200 once every store is open; 503 with the reason before, during
/// shutdown, and after a tenant's write-ahead log failed.
async fn ready(State(state): State<AppState>) -> Response {
    match state.not_ready_reason() {
        None => (StatusCode::OK, "Sightline is Ready.\n").into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Sightline is not ready: {reason}.\n"),
        )
            .into_response(),
    }
}

/// `POST /api/sightline/v1/admin/flush`: writes every tenant's head to blocks (or only
/// the tenant named by `X-Scope-OrgID`), truncating the WALs. Used by tests and
/// benchmarks. Only with `server.enable_admin_api` (`--enable-admin-api`), as it has
/// no authentication; otherwise 403 in the Prometheus error shape naming the option.
async fn admin_flush(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.config().server.enable_admin_api {
        return ApiError::new(
            ErrorKind::Forbidden,
            "admin APIs are disabled: start the server with --enable-admin-api \
             (server.enable_admin_api: true, env SIGHTLINE_ENABLE_ADMIN_API=true)",
        )
        .into_prometheus_response();
    }
    match admin_flush_inner(&state, &headers).await {
        Ok(flushed) => {
            tracing::debug!(tenants = flushed.len(), "admin flush done");
            axum::Json(serde_json::json!({ "status": "success" })).into_response()
        }
        Err(e) => e.into_prometheus_response(),
    }
}

async fn admin_flush_inner(state: &AppState, headers: &HeaderMap) -> Result<Vec<String>, ApiError> {
    state.check_accepting_writes()?;
    let dbs = if headers.contains_key(TENANT_HEADER) {
        let tenant = tenant_from_headers(headers)?;
        state
            .existing_metrics_db(&tenant)
            .map(|db| vec![(tenant, db)])
            .unwrap_or_default()
    } else {
        state.all_metrics_dbs()
    };
    let mut flushed = Vec::with_capacity(dbs.len());
    for (tenant, db) in dbs {
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| ApiError::internal(format!("flush task failed: {e}")))?
            .map_err(|e| ApiError::internal(format!("flushing tenant {tenant} failed: {e}")))?;
        tracing::info!(
            tenant = %tenant,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "flushed head to blocks"
        );
        flushed.push(tenant.to_string());
    }
    Ok(flushed)
}

/// Unknown paths: 404 in the Prometheus API's error shape.
async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::new(
        ErrorKind::NotFound,
        format!("no such endpoint: {}", uri.path()),
    )
    .into_prometheus_response()
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::net::SocketAddr;

    use crate::config::Config;
    use crate::state::{AppState, DataDirLock};

    /// A server on an ephemeral loopback port over a fresh data dir, stores open.
    #[derive(Debug)]
    pub(crate) struct TestApp {
        pub(crate) address: SocketAddr,
        pub(crate) state: AppState,
        pub(crate) _dir: tempfile::TempDir,
    }

    impl TestApp {
        pub(crate) async fn spawn(change: impl FnOnce(&mut Config)) -> TestApp {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut config = Config {
                data_dir: dir.path().join("data"),
                ..Config::default()
            };
            config.storage.wal.fsync = crate::config::FsyncMode::None;
            config.server.enable_admin_api = true;
            change(&mut config);
            let lock = DataDirLock::acquire(&config.data_dir).expect("lock");
            let state = AppState::new(config, lock);
            state.open_existing_tenants().expect("open");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let address = listener.local_addr().expect("address");
            let app = super::main_router(state.clone());
            tokio::spawn(async move { axum::serve(listener, app).await });
            TestApp {
                address,
                state,
                _dir: dir,
            }
        }

        pub(crate) fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.address)
        }
    }
}

#[cfg(test)]
mod tests {
    /// A plain client; reqwest needs the process' TLS provider installed first.
    fn test_client() -> reqwest::Client {
        sightline_scrape::install_tls_provider();
        reqwest::Client::new()
    }

    async fn test_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
        test_client().get(url).send().await
    }

    use super::test_support::TestApp;
    use sightline_ingest::remote_write::{encode_request, to_proto};
    use sightline_model::{Labels, Sample, TenantId, TimeSeries, WriteRequest};
    use sightline_tsdb::{MatchOp, Matcher};

    fn now_ns() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    }

    fn series(name: &str, extra: &str, samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: Labels::from_pairs([("__name__", name), ("x", extra)]),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { timestamp, value })
                .collect(),
            exemplars: Vec::new(),
        }
    }

    fn body(series: Vec<TimeSeries>) -> Vec<u8> {
        encode_request(&to_proto(&WriteRequest {
            series,
            metadata: Vec::new(),
        }))
    }

    async fn post(app: &TestApp, path: &str, tenant: Option<&str>, body: Vec<u8>) -> (u16, String) {
        let mut request = test_client()
            .post(app.url(path))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .body(body);
        if let Some(tenant) = tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    #[tokio::test]
    async fn remote_write_stores_per_tenant_and_flushes() {
        let app = TestApp::spawn(|_| {}).await;
        let t = now_ns();
        let (status, text) = post(
            &app,
            "/api/v1/write",
            Some("team-a"),
            body(vec![series("up", "1", &[(t, 1.0)])]),
        )
        .await;
        assert_eq!(status, 204, "{text}");
        let tenant = TenantId::parse("team-a").unwrap();
        let db = app
            .state
            .existing_metrics_db(&tenant)
            .expect("tenant created");
        let matcher = Matcher::new(MatchOp::Equal, "__name__", "up").unwrap();
        let found = db
            .select(&[matcher], t - 1_000_000_000, t + 1_000_000_000)
            .unwrap();
        assert_eq!(found.len(), 1);
        assert!(
            app.state
                .existing_metrics_db(&TenantId::default_tenant())
                .is_none()
        );

        // The same sample again with another value is refused and named.
        let (status, text) = post(
            &app,
            "/api/v1/write",
            Some("team-a"),
            body(vec![
                series("up", "1", &[(t - 60_000_000_000, 2.0)]),
                series("up", "2", &[(t, 1.0)]),
            ]),
        )
        .await;
        assert!(status == 400 || status == 204, "{status} {text}");
        if status == 400 {
            assert!(text.contains("samples rejected"), "{text}");
        }

        let (status, text) = post(&app, "/api/sightline/v1/admin/flush", None, Vec::new()).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(text, r#"{"status":"success"}"#);

        let metrics = test_get(app.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("sightline_samples_received_total 3\n"),
            "{metrics}"
        );
        assert!(metrics.contains("handler=\"/api/v1/write\""), "{metrics}");
    }

    #[tokio::test]
    async fn remote_write_errors_have_their_status_and_name_their_limit() {
        let app = TestApp::spawn(|config| {
            config.server.max_request_body_bytes = crate::config::ByteSize(4096);
            config.limits.ingestion_rate_samples_per_second = 2;
            config.limits.ingestion_burst_samples = 2;
        })
        .await;
        let (status, text) = post(&app, "/api/v1/write", None, vec![0u8; 5000]).await;
        assert_eq!(status, 413, "{text}");
        assert!(text.contains("server.max_request_body_bytes"), "{text}");

        let (status, text) = post(&app, "/api/v1/write", None, b"not snappy".to_vec()).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("snappy"), "{text}");

        let t = now_ns();
        let three = body(vec![
            series("a", "1", &[(t, 1.0)]),
            series("a", "2", &[(t, 1.0)]),
            series("a", "3", &[(t, 1.0)]),
        ]);
        // Larger than the burst: can never succeed, so 400 (not retried), not 429.
        let (status, text) = post(&app, "/api/v1/write", None, three).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("limits.ingestion_burst_samples"), "{text}");
        let two = body(vec![
            series("a", "1", &[(t, 1.0)]),
            series("a", "2", &[(t, 1.0)]),
        ]);
        assert_eq!(post(&app, "/api/v1/write", None, two.clone()).await.0, 204);
        let (status, text) = post(&app, "/api/v1/write", None, two).await;
        assert_eq!(status, 429, "{text}");
        assert!(
            text.contains("limits.ingestion_rate_samples_per_second"),
            "{text}"
        );

        let (status, _) = post(&app, "/api/v1/write", Some("../etc"), Vec::new()).await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn tenants_past_max_tenants_and_reserved_names_are_refused() {
        let app = TestApp::spawn(|config| config.limits.max_tenants = 1).await;
        let t = now_ns();
        let write = || body(vec![series("up", "1", &[(t, 1.0)])]);
        assert_eq!(post(&app, "/api/v1/write", Some("a"), write()).await.0, 204);
        let (status, text) = post(&app, "/api/v1/write", Some("b"), write()).await;
        assert_eq!(status, 429, "{text}");
        assert!(text.contains("limits.max_tenants=1"), "{text}");
        assert!(!app.state.config().data_dir.join("b").exists());
        for reserved in ["LOCK", ".hidden"] {
            let (status, text) = post(&app, "/api/v1/write", Some(reserved), write()).await;
            assert_eq!(status, 400, "{reserved}: {text}");
            assert!(text.contains("invalid tenant id"), "{text}");
        }
    }

    #[tokio::test]
    async fn oversized_exemplars_are_dropped_and_the_samples_kept() {
        use sightline_ingest::remote_write::proto;
        let app = TestApp::spawn(|_| {}).await;
        let t = now_ns();
        let mut request = to_proto(&WriteRequest {
            series: vec![series("up", "1", &[(t, 1.0)])],
            metadata: Vec::new(),
        });
        request.timeseries[0].exemplars.push(proto::Exemplar {
            labels: vec![proto::Label::new("trace_id", "x".repeat(200))],
            value: 1.0,
            timestamp: t / 1_000_000,
        });
        let (status, text) = post(&app, "/api/v1/write", None, encode_request(&request)).await;
        assert_eq!(status, 204, "{text}");
        let db = app
            .state
            .existing_metrics_db(&TenantId::default_tenant())
            .expect("stored");
        let matcher = Matcher::new(MatchOp::Equal, "__name__", "up").unwrap();
        let found = db
            .select(&[matcher], t - 1_000_000_000, t + 1_000_000_000)
            .unwrap();
        assert_eq!(found.len(), 1);
        let metrics = test_get(app.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("sightline_exemplars_rejected_total 1\n"),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn writes_wait_for_the_decode_budget_and_health_stays_up() {
        let app = TestApp::spawn(|config| {
            config.server.max_inflight_decompressed_bytes =
                config.server.max_decompressed_body_bytes;
        })
        .await;
        // Take the whole budget, as if other large bodies were being decoded.
        let held = app.state.decode_budget().acquire(u64::MAX).await.unwrap();
        assert_eq!(app.state.decode_budget().available(), 0);
        let t = now_ns();
        let write = {
            let url = app.url("/api/v1/write");
            let body = body(vec![series("up", "1", &[(t, 1.0)])]);
            tokio::spawn(async move {
                test_client()
                    .post(url)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        };
        // The write waits (it is not refused) while health checks are answered.
        for _ in 0..5 {
            let healthy = test_get(app.url("/-/healthy")).await.unwrap();
            assert_eq!(healthy.status(), 200);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(!write.is_finished(), "the write must wait for the budget");
        drop(held);
        let status = tokio::time::timeout(std::time::Duration::from_secs(10), write)
            .await
            .expect("write finishes once the budget is free")
            .unwrap()
            .unwrap();
        assert_eq!(status, 204);
        let budget = app.state.config().server.max_inflight_decompressed_bytes.0;
        assert_eq!(app.state.decode_budget().available() as u64, budget);
    }

    #[tokio::test]
    async fn series_limit_answers_429() {
        let app = TestApp::spawn(|config| config.limits.max_series_per_tenant = 1).await;
        let t = now_ns();
        let (status, text) = post(
            &app,
            "/api/v1/write",
            None,
            body(vec![
                series("a", "1", &[(t, 1.0)]),
                series("a", "2", &[(t, 1.0)]),
            ]),
        )
        .await;
        assert_eq!(status, 429, "{text}");
        assert!(text.contains("series_limit"), "{text}");
        assert!(text.contains("limits.max_series_per_tenant"), "{text}");
    }

    #[tokio::test]
    async fn health_ready_and_not_found() {
        let app = TestApp::spawn(|_| {}).await;
        assert_eq!(test_get(app.url("/-/healthy")).await.unwrap().status(), 200);
        assert_eq!(test_get(app.url("/-/ready")).await.unwrap().status(), 200);
        let missing = test_get(app.url("/no/such")).await.unwrap();
        assert_eq!(missing.status(), 404);
        app.state.begin_shutdown();
        assert_eq!(test_get(app.url("/-/ready")).await.unwrap().status(), 503);
        let (status, _) = post(&app, "/api/v1/write", None, Vec::new()).await;
        assert_eq!(status, 503);
    }

    #[tokio::test]
    async fn ready_reports_a_failed_wal() {
        let app = TestApp::spawn(|_| {}).await;
        app.state
            .mark_storage_failed(&TenantId::default_tenant(), "wal is poisoned");
        let response = test_get(app.url("/-/ready")).await.unwrap();
        assert_eq!(response.status(), 503);
        let text = response.text().await.unwrap();
        assert!(text.contains("wal is poisoned"), "{text}");
    }

    #[tokio::test]
    async fn admin_flush_needs_enable_admin_api() {
        let app = TestApp::spawn(|config| config.server.enable_admin_api = false).await;
        let (status, text) = post(&app, "/api/sightline/v1/admin/flush", None, Vec::new()).await;
        assert_eq!(status, 403, "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("prometheus shape");
        assert_eq!(json["status"], "error");
        assert_eq!(json["errorType"], "unavailable");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains("--enable-admin-api"), "{error}");
        assert!(error.contains("server.enable_admin_api"), "{error}");

        let enabled = TestApp::spawn(|_| {}).await;
        let (status, text) =
            post(&enabled, "/api/sightline/v1/admin/flush", None, Vec::new()).await;
        assert_eq!(status, 200, "{text}");
    }
}
