//! `/api/v1/query` and `/api/v1/query_range` (PromQL through [`QueryRunner`]),
//! `/api/v1/format_query`, `/api/v1/parse_query` and `/api/v1/query_exemplars`.
//!
//! Parameters are read in Prometheus' order with its wording (`web/api/v1/api.go`:
//! `limit`, times, `step` checks, `timeout`, `lookback_delta`, then the query text);
//! results are written byte for byte as Prometheus writes them (see `format`).
//!
//! [`QueryRunner`]: crate::query_runner::QueryRunner

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use promql_parser::parser::Expr;
use promql_parser::parser::VectorSelector;
use promql_parser::util::{ExprVisitor, walk_expr};
use sightline_model::time::NANOS_PER_MILLI;
use sightline_model::{Exemplar, Labels};
use sightline_promql::{QueryResult, Value};
use sightline_tsdb::Matcher;

use super::format::{
    annotated_success_response, format_sample_value, success_response, write_json_string,
    write_labels, write_point, write_timestamp,
};
use super::params::{
    Form, MAX_TIME_MILLIS, MIN_TIME_MILLIS, invalid_param, limit_param, parse_duration_millis,
    parse_time_millis, selector_matcher_sets, time_param,
};
use super::{ApiResult, no_content, read_store, respond, tenant_db};
use crate::error::ApiError;
use crate::query_runner::{QueryRequest, QueryTime};
use crate::query_store::thousands;
use crate::state::AppState;

/// Warning added when `limit` cut the result, in Prometheus' words.
const TRUNCATED_WARNING: &str = "results truncated due to limit";

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
    let limit = limit_param(&form)?;
    let time = time_param(&form, "time", now_millis())?;
    run_query(state, headers, &form, QueryTime::Instant(time), limit).await
}

/// `GET/POST /api/v1/query_range`.
pub(crate) async fn range_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(range_query_inner(&state, &headers, &uri, &body).await)
}

async fn range_query_inner(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> ApiResult {
    let form = Form::from_request(headers, uri, body)?;
    let limit = limit_param(&form)?;
    let required_time = |name: &str| {
        parse_time_millis(form.value(name).unwrap_or(""))
            .map_err(|cause| invalid_param(name, cause))
    };
    let start = required_time("start")?;
    let end = required_time("end")?;
    if end < start {
        return Err(invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = parse_duration_millis(form.value("step").unwrap_or(""))
        .map_err(|cause| invalid_param("step", cause))?;
    if step <= 0 {
        return Err(invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    let max_points = state.config().query.max_points_per_series;
    let points = end.saturating_sub(start) / step;
    if usize::try_from(points).map_or(true, |points| points > max_points) {
        return Err(ApiError::bad_data(format!(
            "exceeded maximum resolution of {} points per timeseries. Try decreasing the query \
             resolution (?step=XX) (query.max_points_per_series)",
            thousands(max_points)
        )));
    }
    run_query(
        state,
        headers,
        &form,
        QueryTime::Range { start, end, step },
        limit,
    )
    .await
}

/// The part both query endpoints share: `timeout`, `lookback_delta`, the query text,
/// evaluation and the response.
async fn run_query(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
    time: QueryTime,
    limit: usize,
) -> ApiResult {
    let timeout = match form.value("timeout") {
        None => None,
        Some(text) => {
            let millis =
                parse_duration_millis(text).map_err(|cause| invalid_param("timeout", cause))?;
            Some(non_negative_duration(millis))
        }
    };
    let lookback_delta = match form.value("lookback_delta") {
        None => None,
        Some(text) => {
            let millis = parse_duration_millis(text).map_err(|cause| {
                ApiError::bad_data(format!("error parsing lookback delta duration: {cause}"))
            })?;
            // Zero or negative means the default, as in Prometheus.
            (millis > 0).then(|| non_negative_duration(millis))
        }
    };
    let query = form.value("query").unwrap_or("").to_string();
    // Parse before queueing so a typo is answered at once, not after a full queue.
    sightline_promql::check_query(&query).map_err(ApiError::from)?;
    let db = tenant_db(state, headers)?;
    let request = QueryRequest {
        query,
        time,
        timeout,
        lookback_delta,
    };
    let result = state
        .query_runner()
        .run(db, state.self_metrics(), request)
        .await?;
    Ok(query_response(result, limit))
}

fn non_negative_duration(millis: i64) -> Duration {
    Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// `{"resultType":...,"result":...}` in Prometheus' shape, cut to `limit` series
/// (0: no limit) with Prometheus' warning when cut.
fn query_response(result: QueryResult, limit: usize) -> Response {
    let QueryResult {
        value,
        mut warnings,
        infos,
    } = result;
    let mut data = String::with_capacity(256);
    data.push_str(r#"{"resultType":"#);
    write_json_string(&mut data, value.type_name());
    data.push_str(r#","result":"#);
    let truncated = match value {
        Value::Scalar { t, v } => {
            write_point(&mut data, t, &format_sample_value(v));
            false
        }
        Value::String { t, s } => {
            write_point(&mut data, t, &s);
            false
        }
        Value::Vector(samples) => write_array(&mut data, &samples, limit, |out, sample| {
            out.push_str(r#"{"metric":"#);
            write_labels(out, &sample.labels);
            out.push_str(r#","value":"#);
            write_point(out, sample.t, &format_sample_value(sample.v));
            out.push('}');
        }),
        Value::Matrix(series) => write_array(&mut data, &series, limit, |out, one| {
            out.push_str(r#"{"metric":"#);
            write_labels(out, &one.labels);
            out.push_str(r#","values":"#);
            write_array(out, &one.points, 0, |out, point| {
                write_point(out, point.t, &format_sample_value(point.v));
            });
            out.push('}');
        }),
    };
    data.push('}');
    if truncated {
        warnings.push(TRUNCATED_WARNING.to_string());
    }
    annotated_success_response(&data, &warnings, &infos)
}

/// Writes the first `limit` of `items` (all for 0) as a JSON array, each by
/// `write_item`; true when some were left out.
fn write_array<T>(
    out: &mut String,
    items: &[T],
    limit: usize,
    write_item: impl Fn(&mut String, &T),
) -> bool {
    let shown = if limit == 0 {
        items.len()
    } else {
        items.len().min(limit)
    };
    out.push('[');
    for (index, item) in items.iter().take(shown).enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_item(out, item);
    }
    out.push(']');
    shown < items.len()
}

/// `GET/POST /api/v1/format_query`: the query pretty-printed (Prometheus'
/// `expr.Pretty(0)`), as a JSON string.
pub(crate) async fn format_query(headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    respond(parsed_query(&headers, &uri, &body).map(|expr| {
        let mut data = String::new();
        write_json_string(&mut data, &expr.prettify());
        success_response(&data, &[])
    }))
}

/// `GET/POST /api/v1/parse_query`: the query's syntax tree as JSON (Prometheus 3's
/// `translateAST` shape, as `promql-parser` serializes it).
pub(crate) async fn parse_query(headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    respond(parsed_query(&headers, &uri, &body).and_then(|expr| {
        let data = serde_json::to_string(&expr)
            .map_err(|e| ApiError::internal(format!("cannot serialize the syntax tree: {e}")))?;
        Ok(success_response(&data, &[]))
    }))
}

fn parsed_query(headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Result<Expr, ApiError> {
    let form = Form::from_request(headers, uri, body)?;
    promql_parser::parser::parse(form.value("query").unwrap_or(""))
        .map_err(|cause| invalid_param("query", cause))
}

fn now_millis() -> i64 {
    sightline_model::time::to_millis(sightline_model::time::now())
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

    #[test]
    fn collects_selectors_of_any_expression() {
        let expr = promql_parser::parser::parse("rate(a[5m]) + on() b{c=\"d\"}").unwrap();
        let mut collector = SelectorCollector::default();
        let _ = walk_expr(&mut collector, &expr);
        let names: Vec<Option<String>> =
            collector.selectors.iter().map(|s| s.name.clone()).collect();
        assert_eq!(names, vec![Some("a".to_string()), Some("b".to_string())]);
    }

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn results_are_written_as_prometheus_writes_them() {
        use sightline_promql::{Point, Series, VectorSample};
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let result = |value| QueryResult {
            value,
            warnings: Vec::new(),
            infos: Vec::new(),
        };
        let scalar = query_response(
            result(Value::Scalar {
                t: 1_500,
                v: f64::NAN,
            }),
            0,
        );
        assert_eq!(
            body_text(scalar).await,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1.500,"NaN"]}}"#
        );
        let matrix = Value::Matrix(vec![Series {
            labels: labels.clone(),
            points: vec![
                Point { t: 1_000, v: 1.0 },
                Point {
                    t: 2_000,
                    v: f64::INFINITY,
                },
            ],
        }]);
        assert_eq!(
            body_text(query_response(result(matrix), 0)).await,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a"},"values":[[1,"1"],[2,"+Inf"]]}]}}"#
        );
        let sample = |job: &str| VectorSample {
            labels: Labels::from_pairs([("job", job)]),
            t: 3_000,
            v: 0.5,
        };
        let mut vector = result(Value::Vector(vec![sample("a"), sample("b")]));
        vector.infos.push("info one".to_string());
        assert_eq!(
            body_text(query_response(vector, 1)).await,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[3,"0.5"]}]},"warnings":["results truncated due to limit"],"infos":["info one"]}"#
        );
    }
}
