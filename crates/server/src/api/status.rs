//! `/api/v1/status/buildinfo` and the tiny HTML status page at `/`.

use axum::extract::State;
use axum::response::{Html, Response};

use super::format::{success_response, write_json_string};
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
    success_response(&data, &[])
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
