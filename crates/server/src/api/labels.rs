//! The metadata endpoints: `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/<name>/values` and `/api/v1/metadata`.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use sightline_model::Labels;
use sightline_model::time::NANOS_PER_MILLI;
use sightline_tsdb::Matcher;

use super::format::{success_response, write_json_string, write_labels, write_string_array};
use super::params::{
    Form, MAX_TIME_MILLIS, MIN_TIME_MILLIS, invalid_param, limit_param, match_param, time_param,
    unescape_label_name,
};
use super::{ApiResult, read_store, respond, tenant_db};
use crate::error::ApiError;
use crate::state::AppState;

/// Prometheus' warning when `limit` cut the result short.
const TRUNCATED_WARNING: &str = "results truncated due to limit";

/// `start`/`end` of a metadata request, in store nanoseconds.
#[derive(Debug, Clone, Copy)]
struct TimeRange {
    mint: i64,
    maxt: i64,
}

fn time_range(form: &Form) -> Result<TimeRange, ApiError> {
    let start = time_param(form, "start", MIN_TIME_MILLIS)?;
    let end = time_param(form, "end", MAX_TIME_MILLIS)?;
    Ok(TimeRange {
        mint: start.saturating_mul(NANOS_PER_MILLI),
        // The whole last millisecond: the store keeps millisecond precision.
        maxt: end
            .saturating_mul(NANOS_PER_MILLI)
            .saturating_add(NANOS_PER_MILLI - 1),
    })
}

/// Applies `limit` (0 = none), returning the warnings to send.
fn truncate<T>(items: &mut Vec<T>, limit: usize) -> Vec<String> {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        return vec![TRUNCATED_WARNING.to_string()];
    }
    Vec::new()
}

/// `GET/POST /api/v1/series`.
pub(crate) async fn series(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(series_inner(&state, &headers, &uri, &body).await)
}

async fn series_inner(state: &AppState, headers: &HeaderMap, uri: &Uri, body: &[u8]) -> ApiResult {
    let form = Form::from_request(headers, uri, body)?;
    if form.values("match[]").is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let limit = limit_param(&form)?;
    let range = time_range(&form)?;
    let matcher_sets = match_param(&form).map_err(|cause| invalid_param("match[]", cause))?;
    let db = tenant_db(state, headers)?;
    let mut found: Vec<Labels> = match db {
        None => Vec::new(),
        Some(db) => {
            read_store(db, move |db| {
                let mut union = BTreeSet::new();
                for matchers in &matcher_sets {
                    union.extend(db.series(matchers, range.mint, range.maxt)?);
                }
                Ok(union.into_iter().collect())
            })
            .await?
        }
    };
    let warnings = truncate(&mut found, limit);
    let mut data = String::from("[");
    for (index, labels) in found.iter().enumerate() {
        if index > 0 {
            data.push(',');
        }
        write_labels(&mut data, labels);
    }
    data.push(']');
    Ok(success_response(&data, &warnings))
}

/// `GET/POST /api/v1/labels`.
pub(crate) async fn label_names(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(label_names_inner(&state, &headers, &uri, &body).await)
}

async fn label_names_inner(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> ApiResult {
    let form = Form::from_request(headers, uri, body)?;
    let limit = limit_param(&form)?;
    let range = time_range(&form)?;
    let matcher_sets = optional_matcher_sets(&form)?;
    let db = tenant_db(state, headers)?;
    let mut names: Vec<String> = match db {
        None => Vec::new(),
        Some(db) => {
            read_store(db, move |db| {
                let mut union = BTreeSet::new();
                for matchers in &matcher_sets {
                    union.extend(db.label_names(matchers, range.mint, range.maxt)?);
                }
                Ok(union.into_iter().collect())
            })
            .await?
        }
    };
    let warnings = truncate(&mut names, limit);
    let mut data = String::new();
    write_string_array(&mut data, &names);
    Ok(success_response(&data, &warnings))
}

/// `GET /api/v1/label/<name>/values`.
pub(crate) async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    respond(label_values_inner(&state, name, &headers, &uri).await)
}

async fn label_values_inner(
    state: &AppState,
    name: String,
    headers: &HeaderMap,
    uri: &Uri,
) -> ApiResult {
    let name = unescape_label_name(&name);
    if name.is_empty() {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let form = Form::from_request(headers, uri, &[])?;
    let limit = limit_param(&form)?;
    let range = time_range(&form)?;
    let matcher_sets = optional_matcher_sets(&form)?;
    let db = tenant_db(state, headers)?;
    let mut values: Vec<String> = match db {
        None => Vec::new(),
        Some(db) => {
            read_store(db, move |db| {
                let mut union = BTreeSet::new();
                for matchers in &matcher_sets {
                    union.extend(db.label_values(&name, matchers, range.mint, range.maxt)?);
                }
                Ok(union.into_iter().collect())
            })
            .await?
        }
    };
    let warnings = truncate(&mut values, limit);
    let mut data = String::new();
    write_string_array(&mut data, &values);
    Ok(success_response(&data, &warnings))
}

/// `match[]` of the labels endpoints: optional; absent means one empty set (all series).
fn optional_matcher_sets(form: &Form) -> Result<Vec<Vec<Matcher>>, ApiError> {
    if form.values("match[]").is_empty() {
        return Ok(vec![Vec::new()]);
    }
    // Prometheus reports these without the `invalid parameter` prefix.
    match_param(form).map_err(ApiError::bad_data)
}

/// `GET /api/v1/metadata`: `{"<metric>":[{"type":..,"help":..,"unit":..}]}`.
pub(crate) async fn metadata(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    respond(metadata_inner(&state, &headers, &uri).await)
}

async fn metadata_inner(state: &AppState, headers: &HeaderMap, uri: &Uri) -> ApiResult {
    let form = Form::from_request(headers, uri, &[])?;
    let limit = signed_number(&form, "limit")?;
    let limit_per_metric = signed_number(&form, "limit_per_metric")?;
    let metric = form.value("metric").map(str::to_string);
    let db = tenant_db(state, headers)?;
    let all = match db {
        None => Vec::new(),
        Some(db) => read_store(db, |db| Ok(db.metadata())).await?,
    };
    // Family name -> distinct entries, sorted like Go's map marshaling.
    let mut families: BTreeMap<String, Vec<sightline_model::MetricMetadata>> = BTreeMap::new();
    for entry in all {
        if metric
            .as_deref()
            .is_some_and(|wanted| wanted != entry.metric_family_name)
        {
            continue;
        }
        let entries = families
            .entry(entry.metric_family_name.clone())
            .or_default();
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    let mut data = String::from("{");
    for (written, (name, entries)) in families.iter().enumerate() {
        if limit >= 0 && written as i64 >= limit {
            break;
        }
        if written > 0 {
            data.push(',');
        }
        write_json_string(&mut data, name);
        data.push_str(":[");
        for (index, entry) in entries.iter().enumerate() {
            if limit_per_metric > 0 && index as i64 >= limit_per_metric {
                break;
            }
            if index > 0 {
                data.push(',');
            }
            data.push_str(r#"{"type":"#);
            write_json_string(&mut data, entry.metric_type.as_str());
            data.push_str(r#","help":"#);
            write_json_string(&mut data, &entry.help);
            data.push_str(r#","unit":"#);
            write_json_string(&mut data, &entry.unit);
            data.push('}');
        }
        data.push(']');
    }
    data.push('}');
    Ok(success_response(&data, &[]))
}

/// `limit`/`limit_per_metric` of the metadata endpoint: -1 when absent.
fn signed_number(form: &Form, name: &str) -> Result<i64, ApiError> {
    match form.value(name) {
        None => Ok(-1),
        Some(text) => super::params::go_atoi(text)
            .map_err(|_| ApiError::bad_data(format!("{name} must be a number"))),
    }
}
