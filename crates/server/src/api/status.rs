//! `/api/v1/status/*` (build and runtime info, TSDB cardinality, flags, config) in
//! Prometheus' shapes, and the tiny HTML status page at `/`.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{Html, Response};
use sightline_tsdb::cardinality::{Cardinality, CardinalityStat};

use super::format::{success_response, write_json_string};
use super::params::{Form, go_atoi};
use super::{ApiResult, respond, tenant_db};
use crate::config::{Config, LogFormat, format_duration};
use crate::error::ApiError;
use crate::state::AppState;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /api/v1/status/buildinfo`, Prometheus' `PrometheusVersion` fields.
pub(crate) async fn build_info() -> Response {
    let fields = [
        ("version", VERSION),
        (
            "revision",
            option_env!("SIGHTLINE_GIT_REVISION").unwrap_or("unknown"),
        ),
        (
            "branch",
            option_env!("SIGHTLINE_GIT_BRANCH").unwrap_or("unknown"),
        ),
        (
            "buildUser",
            option_env!("SIGHTLINE_BUILD_USER").unwrap_or("unknown"),
        ),
        (
            "buildDate",
            option_env!("SIGHTLINE_BUILD_DATE").unwrap_or("unknown"),
        ),
        // Not a Go program; the field is kept so clients that read it do not break.
        ("goVersion", "none (sightline is written in rust)"),
    ];
    let data = string_object(&fields);
    success_response(&data, &[])
}

/// A JSON object of string fields, in the given order.
fn string_object(fields: &[(&str, &str)]) -> String {
    let mut data = String::from("{");
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            data.push(',');
        }
        write_json_string(&mut data, name);
        data.push(':');
        write_json_string(&mut data, value);
    }
    data.push('}');
    data
}

/// `GET /api/v1/status/runtimeinfo`: Prometheus' `RuntimeInfo` keys, all of them.
/// The Go runtime fields hold their nearest equivalent: tokio's alive tasks for
/// `goroutineCount`, its worker threads for `GOMAXPROCS`, no memory limit for
/// `GOMEMLIMIT` (Go's `math.MaxInt64`), empty `GOGC`/`GODEBUG`.
pub(crate) async fn runtime_info(State(state): State<AppState>) -> Response {
    let config = state.config();
    let start_millis = (state.self_metrics().start_unix_seconds() * 1000.0) as i64;
    let now_millis = sightline_model::time::to_millis(sightline_model::time::now());
    let runtime = tokio::runtime::Handle::current().metrics();
    let cwd = std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default();
    let mut data = String::from("{");
    let strings = [
        ("startTime", rfc3339(start_millis)),
        ("CWD", cwd),
        ("hostname", hostname),
        ("serverTime", rfc3339(now_millis)),
    ];
    for (name, value) in &strings {
        write_json_string(&mut data, name);
        data.push(':');
        write_json_string(&mut data, value);
        data.push(',');
    }
    // The configuration is read once at start and never reloaded.
    data.push_str(r#""reloadConfigSuccess":true,"lastConfigTime":"#);
    write_json_string(&mut data, &rfc3339(start_millis));
    let _ = write!(
        data,
        r#","corruptionCount":0,"goroutineCount":{},"GOMAXPROCS":{},"GOMEMLIMIT":{},"GOGC":"","GODEBUG":"","storageRetention":"#,
        runtime.num_alive_tasks(),
        runtime.num_workers(),
        i64::MAX
    );
    write_json_string(&mut data, &storage_retention(config));
    data.push('}');
    success_response(&data, &[])
}

/// Prometheus' `storageRetention`: `15d`, `10GiB`, or `15d or 10GiB`.
fn storage_retention(config: &Config) -> String {
    let metrics = &config.storage.metrics;
    let mut parts = Vec::new();
    if !metrics.retention_time.0.is_zero() {
        parts.push(format_duration(metrics.retention_time.0));
    }
    if metrics.retention_bytes.0 > 0 {
        parts.push(format!("{}B", metrics.retention_bytes.0));
    }
    parts.join(" or ")
}

/// Milliseconds since the epoch as Go's `time.Time` JSON (RFC 3339, UTC, fraction
/// without trailing zeros).
fn rfc3339(unix_millis: i64) -> String {
    let days = unix_millis.div_euclid(86_400_000);
    let millis_of_day = unix_millis.rem_euclid(86_400_000);
    let (year, month, day) = sightline_model::time::civil_from_days(days);
    let seconds_of_day = millis_of_day / 1000;
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    );
    let fraction = millis_of_day % 1000;
    if fraction != 0 {
        let digits = format!("{fraction:03}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// `GET /api/v1/status/tsdb`: the tenant's head cardinality in Prometheus'
/// `TSDBStatus` shape; `limit` (default 10) entries per list.
pub(crate) async fn tsdb_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    respond(tsdb_status_inner(&state, &headers, &uri).await)
}

async fn tsdb_status_inner(state: &AppState, headers: &HeaderMap, uri: &Uri) -> ApiResult {
    let form = Form::from_request(headers, uri, &Bytes::new())?;
    let limit = match form.value("limit") {
        None => 10,
        Some(text) => match go_atoi(text).map(usize::try_from) {
            Ok(Ok(limit)) if limit >= 1 => limit,
            _ => return Err(ApiError::bad_data("limit must be a positive number")),
        },
    };
    let stats = match tenant_db(state, headers)? {
        None => Cardinality::default(),
        Some(db) => tokio::task::spawn_blocking(move || db.cardinality(limit))
            .await
            .map_err(|e| ApiError::internal(format!("cardinality task failed: {e}")))?,
    };
    // An empty head reports Prometheus' initial bounds: min above max.
    let (min_time, max_time) = stats.time_range.unwrap_or((i64::MAX, i64::MIN));
    let mut data = String::new();
    let _ = write!(
        data,
        r#"{{"headStats":{{"numSeries":{},"numLabelPairs":{},"chunkCount":{},"minTime":{min_time},"maxTime":{max_time}}}"#,
        stats.num_series, stats.num_label_pairs, stats.chunk_count
    );
    let lists = [
        (
            "seriesCountByMetricName",
            &stats.series_count_by_metric_name,
        ),
        (
            "labelValueCountByLabelName",
            &stats.label_value_count_by_label_name,
        ),
        (
            "memoryInBytesByLabelName",
            &stats.memory_in_bytes_by_label_name,
        ),
        (
            "seriesCountByLabelValuePair",
            &stats.series_count_by_label_value_pair,
        ),
    ];
    for (key, list) in lists {
        data.push(',');
        write_json_string(&mut data, key);
        data.push(':');
        write_stats(&mut data, list);
    }
    data.push('}');
    Ok(success_response(&data, &[]))
}

/// `[{"name":...,"value":...}, ...]`.
fn write_stats(out: &mut String, stats: &[CardinalityStat]) {
    out.push('[');
    for (index, stat) in stats.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(r#"{"name":"#);
        write_json_string(out, &stat.name);
        let _ = write!(out, r#","value":{}}}"#, stat.value);
    }
    out.push(']');
}

/// `GET /api/v1/status/flags`: the effective value of every `serve` flag, by flag name
/// (Prometheus' map of flag to string).
pub(crate) async fn flags(State(state): State<AppState>) -> Response {
    let config = state.config();
    let server = &config.server;
    let log_format = match server.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    let data = string_object(&[
        ("data-dir", &config.data_dir.display().to_string()),
        ("enable-admin-api", &server.enable_admin_api.to_string()),
        ("listen", &server.listen.to_string()),
        ("log-format", log_format),
        ("log-level", &server.log_level),
        ("otlp-grpc-listen", &server.otlp_grpc_listen.to_string()),
        ("otlp-http-listen", &server.otlp_http_listen.to_string()),
    ]);
    success_response(&data, &[])
}

/// `GET /api/v1/status/config`: the effective configuration as YAML, in Prometheus'
/// `{"yaml": ...}` shape.
pub(crate) async fn config(State(state): State<AppState>) -> Response {
    respond(
        serde_saphyr::to_string(state.config())
            .map_err(|e| ApiError::internal(format!("cannot write the configuration: {e}")))
            .map(|yaml| success_response(&string_object(&[("yaml", &yaml)]), &[])),
    )
}

/// `GET /`: version, tenants with their series and blocks, links to the APIs.
pub(crate) async fn index_page(State(state): State<AppState>) -> Html<String> {
    let tenants = tokio::task::spawn_blocking(move || {
        let mut rows: Vec<(String, u64, u64, u64)> = state
            .all_metrics_dbs()
            .into_iter()
            .map(|(tenant, db)| {
                let stats = db.stats();
                (
                    tenant.to_string(),
                    stats.head_series,
                    stats.head_samples,
                    stats.blocks,
                )
            })
            .collect();
        rows.sort();
        rows
    })
    .await
    .unwrap_or_default();
    let mut rows = String::new();
    for (tenant, series, samples, blocks) in &tenants {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{series}</td><td>{samples}</td><td>{blocks}</td></tr>\n",
            html_escape(tenant)
        ));
    }
    if tenants.is_empty() {
        rows.push_str("<tr><td colspan=\"4\">no data yet</td></tr>\n");
    }
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Sightline</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:0 1em;text-align:left}}</style>\
         </head><body>\n<h1>Sightline {VERSION}</h1>\n\
         <h2>Tenants</h2>\n<table><tr><th>tenant</th><th>active series</th><th>head samples</th><th>blocks</th></tr>\n\
         {rows}</table>\n<h2>Links</h2>\n<ul>\n\
         <li><a href=\"/metrics\">/metrics</a> (self-monitoring)</li>\n\
         <li><a href=\"/api/v1/labels\">/api/v1/labels</a></li>\n\
         <li><a href=\"/api/v1/label/__name__/values\">/api/v1/label/__name__/values</a></li>\n\
         <li><a href=\"/api/v1/metadata\">/api/v1/metadata</a></li>\n\
         <li><a href=\"/api/v1/status/buildinfo\">/api/v1/status/buildinfo</a></li>\n\
         <li><a href=\"/api/v1/status/runtimeinfo\">/api/v1/status/runtimeinfo</a></li>\n\
         <li><a href=\"/api/v1/status/tsdb\">/api/v1/status/tsdb</a> (head cardinality)</li>\n\
         <li><a href=\"/-/ready\">/-/ready</a></li>\n\
         </ul>\n</body></html>\n"
    ))
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_go_writes_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_120), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn retention_reads_like_prometheus() {
        let mut config = Config::default();
        assert_eq!(storage_retention(&config), "15d");
        config.storage.metrics.retention_bytes = crate::config::ByteSize(1024);
        assert_eq!(storage_retention(&config), "15d or 1024B");
    }
}
