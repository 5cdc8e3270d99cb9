//! `/api/v1/query` for plain instant vector selectors (and number/string literals) until
//! the PromQL engine lands, and `/api/v1/query_exemplars`.
//!
//! A selector is evaluated as Prometheus does: at `time` (default now), shifted by
//! `offset` or pinned by `@`, each series' latest sample in the left-open lookback
//! window `(t - lookback_delta, t]` (5m by default), series whose latest sample is the
//! staleness marker left out. Anything else is refused with 400 rather than answered
//! wrongly.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use sightline_model::time::NANOS_PER_MILLI;
use sightline_model::{Exemplar, Labels, Sample, is_stale_nan};
use sightline_tsdb::Matcher;

use super::format::{
    format_sample_value, success_response, write_json_string, write_labels, write_point,
    write_timestamp,
};
use super::params::{
    Form, MAX_TIME_MILLIS, MIN_TIME_MILLIS, invalid_param, parse_duration_millis,
    selector_matcher_sets, time_param,
};
use super::{ApiResult, no_content, read_store, respond, tenant_db};
use crate::error::ApiError;
use crate::state::AppState;

/// Prometheus' default lookback delta.
const DEFAULT_LOOKBACK_MILLIS: i64 = 5 * 60 * 1000;

/// `GET/POST /api/v1/query`.
pub(crate) async fn instant_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(instant_query_inner(&state, &headers, &uri, &body).await)
}

async fn instant_query_inner(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> ApiResult {
    let form = Form::from_request(headers, uri, body)?;
    let eval_millis = time_param(&form, "time", now_millis())?;
    if let Some(timeout) = form.value("timeout") {
        parse_duration_millis(timeout).map_err(|cause| invalid_param("timeout", cause))?;
    }
    let lookback_millis = match form.value("lookback_delta") {
        None => DEFAULT_LOOKBACK_MILLIS,
        Some(text) => {
            let millis = parse_duration_millis(text).map_err(|cause| {
                ApiError::bad_data(format!("error parsing lookback delta duration: {cause}"))
            })?;
            if millis <= 0 {
                DEFAULT_LOOKBACK_MILLIS
            } else {
                millis
            }
        }
    };
    let query_text = form.value("query").unwrap_or("");
    let expr =
        promql_parser::parser::parse(query_text).map_err(|cause| invalid_param("query", cause))?;
    let expr = strip_parens(expr);
    let mut data = String::new();
    match expr {
        Expr::NumberLiteral(number) => {
            data.push_str(r#"{"resultType":"scalar","result":"#);
            write_point(&mut data, eval_millis, &format_sample_value(number.val));
            data.push('}');
        }
        Expr::StringLiteral(string) => {
            data.push_str(r#"{"resultType":"string","result":"#);
            write_point(&mut data, eval_millis, &string.val);
            data.push('}');
        }
        Expr::VectorSelector(selector) => {
            let vector =
                evaluate_selector(state, headers, &selector, eval_millis, lookback_millis).await?;
            data.push_str(r#"{"resultType":"vector","result":["#);
            for (index, (labels, sample)) in vector.iter().enumerate() {
                if index > 0 {
                    data.push(',');
                }
                data.push_str(r#"{"metric":"#);
                write_labels(&mut data, labels);
                data.push_str(r#","value":"#);
                write_point(&mut data, eval_millis, &format_sample_value(sample.value));
                data.push('}');
            }
            data.push_str("]}");
        }
        other => {
            return Err(invalid_param(
                "query",
                format!(
                    "only instant vector selectors such as up{{job=\"api\"}} (with optional offset or @) \
                     and number or string literals are supported until the PromQL engine lands; \
                     this query is {}",
                    expression_kind(&other)
                ),
            ));
        }
    }
    Ok(success_response(&data, &[]))
}

fn strip_parens(expr: Expr) -> Expr {
    match expr {
        Expr::Paren(paren) => strip_parens(*paren.expr),
        other => other,
    }
}

fn expression_kind(expr: &Expr) -> &'static str {
    match expr {
        Expr::Aggregate(_) => "an aggregation",
        Expr::Unary(_) => "a unary expression",
        Expr::Binary(_) => "a binary expression",
        Expr::Paren(_) => "a parenthesized expression",
        Expr::Subquery(_) => "a subquery",
        Expr::NumberLiteral(_) => "a number",
        Expr::StringLiteral(_) => "a string",
        Expr::VectorSelector(_) => "a vector selector",
        Expr::MatrixSelector(_) => "a range vector selector",
        Expr::Call(_) => "a function call",
        Expr::Extension(_) => "an extension expression",
    }
}

fn now_millis() -> i64 {
    sightline_model::time::to_millis(sightline_model::time::now())
}

fn system_time_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(MAX_TIME_MILLIS),
        Err(before) => i64::try_from(before.duration().as_millis())
            .map(|millis| -millis)
            .unwrap_or(MIN_TIME_MILLIS),
    }
}

/// The time a selector reads at: `@` pins it, `offset` shifts it.
fn selector_reference_millis(selector: &VectorSelector, eval_millis: i64) -> i64 {
    let pinned = match &selector.at {
        None | Some(AtModifier::Start) | Some(AtModifier::End) => eval_millis,
        Some(AtModifier::At(time)) => system_time_millis(*time),
    };
    let offset_millis = |duration: &std::time::Duration| {
        i64::try_from(duration.as_millis()).unwrap_or(MAX_TIME_MILLIS)
    };
    match &selector.offset {
        None => pinned,
        Some(Offset::Pos(duration)) => pinned.saturating_sub(offset_millis(duration)),
        Some(Offset::Neg(duration)) => pinned.saturating_add(offset_millis(duration)),
    }
}

/// Each matching series' latest non-stale sample in `(t - lookback, t]`, sorted by labels.
async fn evaluate_selector(
    state: &AppState,
    headers: &HeaderMap,
    selector: &VectorSelector,
    eval_millis: i64,
    lookback_millis: i64,
) -> Result<Vec<(Labels, Sample)>, ApiError> {
    let matcher_sets = selector_matcher_sets(selector)?;
    let reference = selector_reference_millis(selector, eval_millis);
    let mint = reference
        .saturating_sub(lookback_millis)
        .saturating_add(1)
        .saturating_mul(NANOS_PER_MILLI);
    let maxt = reference
        .saturating_mul(NANOS_PER_MILLI)
        .saturating_add(NANOS_PER_MILLI - 1);
    let Some(db) = tenant_db(state, headers)? else {
        return Ok(Vec::new());
    };
    read_store(db, move |db| {
        let mut latest: BTreeMap<Labels, Sample> = BTreeMap::new();
        for matchers in &matcher_sets {
            for series in db.select(matchers, mint, maxt)? {
                let Some(last) = series.samples.last() else {
                    continue;
                };
                if is_stale_nan(last.value) {
                    continue;
                }
                latest.insert(series.labels, *last);
            }
        }
        Ok(latest.into_iter().collect())
    })
    .await
}

/// `GET/POST /api/v1/query_exemplars`.
pub(crate) async fn query_exemplars(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(query_exemplars_inner(&state, &headers, &uri, &body).await)
}

async fn query_exemplars_inner(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> ApiResult {
    let form = Form::from_request(headers, uri, body)?;
    let start = time_param(&form, "start", MIN_TIME_MILLIS)?;
    let end = time_param(&form, "end", MAX_TIME_MILLIS)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start timestamp",
        ));
    }
    let expr = promql_parser::parser::parse(form.value("query").unwrap_or(""))
        .map_err(ApiError::bad_data)?;
    let mut collector = SelectorCollector::default();
    // The collector never fails; the walk's result carries no information.
    let _ = walk_expr(&mut collector, &expr);
    if collector.selectors.is_empty() {
        return Ok(no_content());
    }
    let mut matcher_sets: Vec<Vec<Matcher>> = Vec::new();
    for selector in &collector.selectors {
        matcher_sets.extend(selector_matcher_sets(selector)?);
    }
    let mint = start.saturating_mul(NANOS_PER_MILLI);
    let maxt = end
        .saturating_mul(NANOS_PER_MILLI)
        .saturating_add(NANOS_PER_MILLI - 1);
    let found: BTreeMap<Labels, Vec<Exemplar>> = match tenant_db(state, headers)? {
        None => BTreeMap::new(),
        Some(db) => {
            read_store(db, move |db| {
                let mut by_series: BTreeMap<Labels, Vec<Exemplar>> = BTreeMap::new();
                for matchers in &matcher_sets {
                    for (labels, exemplars) in db.exemplars(matchers, mint, maxt)? {
                        by_series.entry(labels).or_insert(exemplars);
                    }
                }
                Ok(by_series)
            })
            .await?
        }
    };
    let mut data = String::from("[");
    for (index, (labels, exemplars)) in found.iter().filter(|(_, e)| !e.is_empty()).enumerate() {
        if index > 0 {
            data.push(',');
        }
        data.push_str(r#"{"seriesLabels":"#);
        write_labels(&mut data, labels);
        data.push_str(r#","exemplars":["#);
        for (position, exemplar) in exemplars.iter().enumerate() {
            if position > 0 {
                data.push(',');
            }
            data.push_str(r#"{"labels":"#);
            write_labels(&mut data, &exemplar.labels);
            data.push_str(r#","value":"#);
            write_json_string(&mut data, &format_sample_value(exemplar.value));
            data.push_str(r#","timestamp":"#);
            write_timestamp(
                &mut data,
                sightline_model::time::to_millis(exemplar.timestamp),
            );
            data.push('}');
        }
        data.push_str("]}");
    }
    data.push(']');
    Ok(success_response(&data, &[]))
}

/// Every vector selector of an expression, those inside range selectors included
/// (Prometheus' `parser.ExtractSelectors`).
#[derive(Debug, Default)]
struct SelectorCollector {
    selectors: Vec<VectorSelector>,
}

impl ExprVisitor for SelectorCollector {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        match expr {
            Expr::VectorSelector(selector) => self.selectors.push(selector.clone()),
            Expr::MatrixSelector(matrix) => self.selectors.push(matrix.vs.clone()),
            _ => {}
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(text: &str) -> VectorSelector {
        match promql_parser::parser::parse(text).unwrap() {
            Expr::VectorSelector(selector) => selector,
            other => panic!("not a selector: {other:?}"),
        }
    }

    #[test]
    fn offset_and_at_move_the_reference_time() {
        assert_eq!(
            selector_reference_millis(&selector("up"), 1_000_000),
            1_000_000
        );
        assert_eq!(
            selector_reference_millis(&selector("up offset 1m"), 1_000_000),
            940_000
        );
        assert_eq!(
            selector_reference_millis(&selector("up offset -1m"), 1_000_000),
            1_060_000
        );
        assert_eq!(
            selector_reference_millis(&selector("up @ 100"), 1_000_000),
            100_000
        );
        assert_eq!(
            selector_reference_millis(&selector("up @ 100 offset 10s"), 1_000_000),
            90_000
        );
    }

    #[test]
    fn collects_selectors_of_any_expression() {
        let expr = promql_parser::parser::parse("rate(a[5m]) + on() b{c=\"d\"}").unwrap();
        let mut collector = SelectorCollector::default();
        let _ = walk_expr(&mut collector, &expr);
        let names: Vec<Option<String>> =
            collector.selectors.iter().map(|s| s.name.clone()).collect();
        assert_eq!(names, vec![Some("a".to_string()), Some("b".to_string())]);
    }
}
