//! The Prometheus HTTP API v1 read side (PromQL instant and range queries, query
//! formatting and parsing, series, labels, label values, metadata, exemplars, status:
//! build and runtime info, TSDB cardinality, flags, config) and the small HTML status
//! page at `/`.
//!
//! Responses follow Prometheus 2.x/3.x field by field (see `format`); parameters are
//! read and rejected with Prometheus' wording (see `params`). Every request is scoped to
//! the tenant of its `X-Scope-OrgID` header; a tenant without data gets empty results.
//! Store calls run on the blocking pool so a heavy read never stalls the runtime.

mod format;
mod labels;
mod params;
mod query;
mod status;

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sightline_model::TenantId;
use sightline_tsdb::Db;

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;
use crate::tenant::tenant_from_headers;

/// The router of this module; the server merges it into its own.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(status::index_page))
        .route(
            "/api/v1/query",
            get(query::instant_query).post(query::instant_query),
        )
        .route(
            "/api/v1/query_range",
            get(query::range_query).post(query::range_query),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/parse_query",
            get(query::parse_query).post(query::parse_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query::query_exemplars).post(query::query_exemplars),
        )
        .route("/api/v1/series", get(labels::series).post(labels::series))
        .route(
            "/api/v1/labels",
            get(labels::label_names).post(labels::label_names),
        )
        .route("/api/v1/label/{name}/values", get(labels::label_values))
        .route("/api/v1/metadata", get(labels::metadata))
        .route("/api/v1/status/buildinfo", get(status::build_info))
        .route("/api/v1/status/runtimeinfo", get(status::runtime_info))
        .route("/api/v1/status/tsdb", get(status::tsdb_status))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
}

/// What every handler returns before it becomes a response.
type ApiResult = Result<Response, ApiError>;

/// Turns a handler's result into a response, errors in Prometheus' error shape.
fn respond(result: ApiResult) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => {
            // Our failures are logged; a client's bad query or a query past a limit
            // (execution, timeout) is its own business and only worth a debug line.
            if error.kind == ErrorKind::Internal {
                tracing::error!(error = %error.message, "prometheus api request failed");
            } else {
                tracing::debug!(kind = ?error.kind, error = %error.message, "prometheus api request refused");
            }
            error.into_prometheus_response()
        }
    }
}

/// The request's tenant and its metrics store, if the tenant has ever written.
fn tenant_db(state: &AppState, headers: &HeaderMap) -> Result<Option<Arc<Db>>, ApiError> {
    let tenant: TenantId = tenant_from_headers(headers)?;
    Ok(state.existing_metrics_db(&tenant))
}

/// Runs a blocking store read on the blocking pool.
async fn read_store<T, F>(db: Arc<Db>, read: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Db) -> sightline_tsdb::Result<T> + Send + 'static,
{
    let joined = tokio::task::spawn_blocking(move || read(&db)).await;
    match joined {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(store_error(error)),
        Err(join_error) => Err(ApiError::internal(format!(
            "store read task failed: {join_error}"
        ))),
    }
}

/// How a store error reaches a client of the query API: a bad regex is the client's
/// fault; anything else (corrupt block, I/O) is `execution` (422), as Prometheus reports
/// querier failures.
fn store_error(error: sightline_tsdb::Error) -> ApiError {
    match error {
        sightline_tsdb::Error::InvalidRegex { .. } => ApiError::bad_data(error.to_string()),
        other => {
            tracing::error!(error = %other, "store read failed");
            ApiError::new(ErrorKind::Execution, other.to_string())
        }
    }
}

/// 204 No Content, what Prometheus answers when a handler has no data at all.
fn no_content() -> Response {
    axum::http::StatusCode::NO_CONTENT.into_response()
}
