//! Ingest over HTTP: Prometheus remote_write 1.0 (`POST /api/v1/write`) and OTLP/HTTP
//! metrics (`POST /v1/metrics`, protobuf or JSON, optionally gzip).
//!
//! Every write goes the same way: body read under `server.max_request_body_bytes`;
//! its decompressed size taken from the global budget
//! `server.max_inflight_decompressed_bytes` (waiting, never failing, when it is spent);
//! then, on the blocking pool (never on the async workers that serve health checks and
//! queries): decoded under `server.max_decompressed_body_bytes` and the label limits,
//! the tenant's token bucket charged (`limits.ingestion_rate_samples_per_second`), and
//! appended by the tenant's store. Samples the store cannot keep
//! are reported back, never silently lost.
//!
//! Native histograms in remote_write are not stored yet: the rest of the request is
//! accepted (204), and the dropped histogram samples are logged and counted in
//! `sightline_samples_rejected_total{reason="native_histogram"}`.

use std::io::Read;
use std::pin::Pin;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sightline_ingest::otlp::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse};
use sightline_model::{LabelSet, MetricMetadata, SeriesRef, TenantId, WriteRequest};
use sightline_tsdb::{AppendReport, RejectReason};

use crate::config::LimitsConfig;
use crate::error::{ApiError, ErrorKind, OtlpEncoding, otlp_body_response};
use crate::inflight::shrink_permit;
use crate::self_metrics::{REASON_INVALID, REASON_RATE_LIMITED, REASON_UNSUPPORTED};
use crate::state::AppState;
use crate::tenant::tenant_from_headers;

/// Reason label for remote_write native histogram samples, which are not stored yet.
pub(crate) const REASON_NATIVE_HISTOGRAM: &str = "native_histogram";

/// Routes of the main listener: remote_write and OTLP/HTTP.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/write", post(remote_write))
        .merge(otlp_routes())
}

/// OTLP/HTTP routes, also served alone on `server.otlp_http_listen`.
pub(crate) fn otlp_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/metrics", post(otlp_metrics))
        .route("/v1/logs", post(otlp_logs))
        .route("/v1/traces", post(otlp_traces))
}

/// Reads the whole body, refusing it (413) as soon as it passes `limit` bytes.
pub(crate) async fn read_body_limited(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::TooLarge,
            format!("request body is larger than {limit} bytes (server.max_request_body_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = body;
    if declared.is_some_and(|length| length > limit) {
        drain_before_refusing(&mut body).await;
        return Err(too_large());
    }
    let capacity = declared.unwrap_or(0).min(limit);
    let mut buffer = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame
            .map_err(|e| ApiError::bad_data(format!("reading the request body failed: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if (buffer.len() + data.len()) as u64 > limit {
            drain_before_refusing(&mut body).await;
            return Err(too_large());
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Bytes::from(buffer))
}

/// Bytes of a refused body read and thrown away before answering, as Go's net/http
/// does: a client that writes its whole body before reading the answer then gets the
/// 413 instead of a reset connection, while a huge body still costs us little.
const REFUSED_BODY_DRAIN_BYTES: usize = 256 * 1024;

async fn drain_before_refusing(body: &mut Body) {
    let mut drained = 0usize;
    while drained < REFUSED_BODY_DRAIN_BYTES {
        match std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
            Some(Ok(frame)) => drained += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

/// Maps an adapter error to what the client sees, naming the config option for sizes.
pub(crate) fn ingest_error(error: sightline_ingest::Error) -> ApiError {
    match error {
        sightline_ingest::Error::TooLarge {
            decompressed,
            limit,
        } => ApiError::new(
            ErrorKind::TooLarge,
            format!(
                "decompressed body would be {decompressed} bytes; limit is {limit} \
                 (server.max_decompressed_body_bytes)"
            ),
        ),
        other => ApiError::bad_data(other.to_string()),
    }
}

/// Charges the tenant's rate limit, then appends `request` to the tenant's store.
/// BLOCKING: call it from `spawn_blocking`. Store rejections are in the returned
/// report, not an error. A WAL failure also marks the server not ready.
pub(crate) fn rate_limit_and_append_blocking<L: LabelSet>(
    state: &AppState,
    tenant: &TenantId,
    series: &[SeriesRef<'_, L>],
    metadata: &[MetricMetadata],
) -> Result<AppendReport, ApiError> {
    state.check_accepting_writes()?;
    let samples: u64 = series.iter().map(|s| s.samples.len() as u64).sum();
    let metrics = state.self_metrics();
    metrics.add_samples_received(samples);
    if let Err(e) = state.rate_limiter().check(tenant, samples) {
        let reason = if e.kind == ErrorKind::RateLimited {
            REASON_RATE_LIMITED
        } else {
            REASON_INVALID
        };
        metrics.add_samples_rejected(reason, samples);
        tracing::debug!(tenant = %tenant, samples, reason, "samples rejected by the rate limit");
        return Err(e);
    }
    if series.is_empty() && metadata.is_empty() {
        return Ok(AppendReport::default());
    }
    let db = state.metrics_db_for_write(tenant)?;
    let report = db.append_series(series, metadata).map_err(|e| {
        if matches!(e, sightline_tsdb::Error::Wal(_)) {
            state.mark_storage_failed(tenant, &e.to_string());
        }
        ApiError::internal(format!("storing samples of tenant {tenant} failed: {e}"))
    })?;
    for rejection in &report.rejected {
        metrics.add_samples_rejected(rejection.reason.as_str(), rejection.count);
    }
    if !report.rejected.is_empty() {
        tracing::debug!(
            tenant = %tenant,
            rejected = report.samples_rejected(),
            accepted = report.samples_accepted,
            "samples rejected by the store"
        );
    }
    Ok(report)
}

/// Runs `work` on tokio's blocking pool, so decoding and appending never stall the
/// async workers (health checks, queries).
pub(crate) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("ingest task failed: {e}")))?
}

/// One line per rejection reason: `out_of_order: 3 samples (e.g. ...)`.
pub(crate) fn describe_rejections(report: &AppendReport) -> String {
    let reasons: Vec<String> = report
        .rejected
        .iter()
        .map(|r| {
            format!(
                "{}: {} samples (e.g. {})",
                r.reason.as_str(),
                r.count,
                r.example
            )
        })
        .collect();
    format!(
        "{} of {} samples rejected; {}",
        report.samples_rejected(),
        report.samples_rejected() + report.samples_accepted,
        reasons.join("; ")
    )
}

/// `POST /api/v1/write`: remote_write 1.0. 204 on success; 400 naming each problem
/// (also for a request with more samples than `limits.ingestion_burst_samples`, which
/// could never succeed); 413 past a size limit; 429 past the ingestion rate, the series
/// limit (`limits.max_series_per_tenant`: retrying later may succeed once series go
/// stale, as Prometheus' own handler answers) or `limits.max_tenants`; 503 while
/// starting.
///
/// Decoding (snappy, protobuf, validation) and the append run on the blocking pool,
/// after taking the body's decompressed size from the global decode budget
/// (`server.max_inflight_decompressed_bytes`; a request waits for it, never fails).
/// Exemplars that break Prometheus' rules (label text over 128 characters, invalid
/// UTF-8) are dropped, logged and counted, and the rest of the request is stored.
async fn remote_write(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match remote_write_inner(&state, &headers, body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            let retryable = matches!(e.kind, ErrorKind::RateLimited | ErrorKind::Unavailable);
            let mut response = e.into_text_response();
            if retryable {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            response
        }
    }
}

async fn remote_write_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), ApiError> {
    let tenant = tenant_from_headers(headers)?;
    check_remote_write_version(headers)?;
    state.check_accepting_writes()?;
    let config = state.config();
    let body = read_body_limited(headers, body, config.server.max_request_body_bytes.0).await?;
    // The snappy header's claim, capped by the limit the decoder enforces; a body
    // without a valid header fails decoding right away and costs its own size.
    let limits = decode_limits(state);
    let claimed = snap::raw::decompress_len(&body)
        .unwrap_or(body.len())
        .min(limits.max_decompressed_bytes);
    let permit = state.decode_budget().acquire(claimed as u64).await?;
    let work_state = state.clone();
    run_blocking(move || {
        let _permit = permit;
        remote_write_blocking(&work_state, &tenant, &body, &limits)
    })
    .await
}

/// Decodes and stores one remote_write body. BLOCKING.
fn remote_write_blocking(
    state: &AppState,
    tenant: &TenantId,
    body: &[u8],
    limits: &sightline_ingest::remote_write::DecodeLimits,
) -> Result<(), ApiError> {
    let pool = state.remote_write_scratch();
    let mut scratch = pool.take();
    let stored = decode_and_store(state, tenant, body, limits, &mut scratch);
    pool.give(scratch);
    stored
}

/// [`remote_write_blocking`] with its decoding buffers.
fn decode_and_store(
    state: &AppState,
    tenant: &TenantId,
    body: &[u8],
    limits: &sightline_ingest::remote_write::DecodeLimits,
    scratch: &mut sightline_ingest::remote_write::Scratch,
) -> Result<(), ApiError> {
    let refuse = |e: sightline_ingest::Error| {
        if !e.is_too_large() {
            state.self_metrics().add_invalid_write_request();
        }
        ingest_error(e)
    };
    let decoded =
        sightline_ingest::remote_write::decode_body(body, limits, scratch).map_err(refuse)?;
    if decoded.native_histograms_dropped > 0 {
        state
            .self_metrics()
            .add_samples_rejected(REASON_NATIVE_HISTOGRAM, decoded.native_histograms_dropped);
        tracing::warn!(
            tenant = %tenant,
            dropped = decoded.native_histograms_dropped,
            "native histogram samples dropped: not supported yet"
        );
    }
    if decoded.exemplars_dropped > 0 {
        state
            .self_metrics()
            .add_exemplars_rejected(decoded.exemplars_dropped);
        tracing::debug!(
            tenant = %tenant,
            dropped = decoded.exemplars_dropped,
            example = decoded.exemplar_drop_reason.as_deref().unwrap_or(""),
            "invalid exemplars dropped"
        );
    }
    let series = decoded.series();
    let report = rate_limit_and_append_blocking(state, tenant, &series, &decoded.metadata)?;
    if report.rejected.is_empty() {
        return Ok(());
    }
    let series_limited = report
        .rejected
        .iter()
        .any(|r| matches!(r.reason, RejectReason::SeriesLimit));
    let kind = if series_limited {
        ErrorKind::RateLimited
    } else {
        ErrorKind::BadData
    };
    let mut message = describe_rejections(&report);
    if series_limited {
        message.push_str(&format!(
            "; limit is {} series per tenant (limits.max_series_per_tenant)",
            state.config().limits.max_series_per_tenant
        ));
    }
    Err(ApiError::new(kind, message))
}

/// Refuses remote_write 2.0 bodies (415, so Prometheus can fall back to 1.0).
fn check_remote_write_version(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.contains("io.prometheus.write.v2") {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "remote write 2.0 (io.prometheus.write.v2.Request) is not supported yet; \
             send remote write 1.0 (protobuf_message: prometheus.WriteRequest)",
        ));
    }
    Ok(())
}

fn decode_limits(state: &AppState) -> sightline_ingest::remote_write::DecodeLimits {
    let config = state.config();
    sightline_ingest::remote_write::DecodeLimits {
        max_decompressed_bytes: usize::try_from(config.server.max_decompressed_body_bytes.0)
            .unwrap_or(usize::MAX),
        max_label_names_per_series: config.limits.max_label_names_per_series,
        max_label_name_bytes: config.limits.max_label_name_bytes,
        max_label_value_bytes: config.limits.max_label_value_bytes,
    }
}

/// The encoding an OTLP/HTTP request declares, or an error for anything else.
fn otlp_encoding(headers: &HeaderMap) -> Result<OtlpEncoding, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match sightline_ingest::media_type(content_type).as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(OtlpEncoding::Protobuf),
        "application/json" => Ok(OtlpEncoding::Json),
        _ => Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!(
                "unsupported Content-Type {content_type:?}: OTLP/HTTP accepts \
                 application/x-protobuf or application/json"
            ),
        )),
    }
}

/// Un-gzips `body` when `Content-Encoding: gzip`, refusing past `limit` bytes.
pub(crate) fn decode_content_encoding(
    headers: &HeaderMap,
    body: Bytes,
    limit: u64,
) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut decoded = Vec::new();
            let mut reader = flate2::read::MultiGzDecoder::new(body.as_ref()).take(limit + 1);
            reader
                .read_to_end(&mut decoded)
                .map_err(|e| ApiError::bad_data(format!("gzip decompression failed: {e}")))?;
            if decoded.len() as u64 > limit {
                return Err(ApiError::new(
                    ErrorKind::TooLarge,
                    format!(
                        "decompressed body is larger than {limit} bytes \
                         (server.max_decompressed_body_bytes)"
                    ),
                ));
            }
            Ok(Bytes::from(decoded))
        }
        other => Err(ApiError::bad_data(format!(
            "unsupported Content-Encoding {other:?}: use gzip or none"
        ))),
    }
}

/// Drops series whose labels break the per-series limits (OTLP does not check them
/// while translating). Returns the samples dropped and the first reason.
pub(crate) fn enforce_label_limits(
    request: &mut WriteRequest,
    limits: &LimitsConfig,
) -> (u64, Option<String>) {
    let mut dropped = 0u64;
    let mut first_reason = None;
    request.series.retain(|series| {
        let labels = &series.labels;
        let problem = if labels.len() > limits.max_label_names_per_series {
            Some(format!(
                "series {labels} has {} labels; limit is {} (limits.max_label_names_per_series)",
                labels.len(),
                limits.max_label_names_per_series
            ))
        } else if let Some(label) = labels
            .iter()
            .find(|l| l.name.len() > limits.max_label_name_bytes)
        {
            Some(format!(
                "label name {:?} is {} bytes; limit is {} (limits.max_label_name_bytes)",
                label.name,
                label.name.len(),
                limits.max_label_name_bytes
            ))
        } else {
            labels
                .iter()
                .find(|l| l.value.len() > limits.max_label_value_bytes)
                .map(|label| {
                    format!(
                        "value of label {:?} is {} bytes; limit is {} (limits.max_label_value_bytes)",
                        label.name,
                        label.value.len(),
                        limits.max_label_value_bytes
                    )
                })
        };
        match problem {
            None => true,
            Some(problem) => {
                dropped += series.samples.len() as u64;
                first_reason.get_or_insert(problem);
                false
            }
        }
    });
    (dropped, first_reason)
}

/// Translates and stores one OTLP metrics export on the blocking pool; the partial
/// success to report (if anything was dropped or rejected).
pub(crate) async fn export_otlp_metrics(
    state: &AppState,
    tenant: &TenantId,
    request: sightline_ingest::otlp::ExportMetricsServiceRequest,
) -> Result<ExportMetricsServiceResponse, ApiError> {
    let work_state = state.clone();
    let tenant = tenant.clone();
    run_blocking(move || export_otlp_metrics_blocking(&work_state, &tenant, &request)).await
}

/// Translates and stores one OTLP metrics export. BLOCKING.
pub(crate) fn export_otlp_metrics_blocking(
    state: &AppState,
    tenant: &TenantId,
    request: &sightline_ingest::otlp::ExportMetricsServiceRequest,
) -> Result<ExportMetricsServiceResponse, ApiError> {
    let translation = sightline_ingest::otlp::translate(request);
    let mut write = translation.request;
    let mut rejected = translation.dropped_data_points;
    let mut reasons = translation.dropped_reasons;
    let metrics = state.self_metrics();
    metrics.add_samples_rejected(REASON_UNSUPPORTED, translation.dropped_data_points);
    if translation.dropped_exemplars > 0 {
        metrics.add_exemplars_rejected(translation.dropped_exemplars);
        tracing::debug!(
            tenant = %tenant,
            dropped = translation.dropped_exemplars,
            "otlp exemplars dropped: labels longer than 128 characters"
        );
    }
    let (over_limits, limit_reason) = enforce_label_limits(&mut write, &state.config().limits);
    if over_limits > 0 {
        metrics.add_samples_rejected(REASON_INVALID, over_limits);
        rejected += over_limits;
        reasons.extend(limit_reason);
    }
    let series = write.series_refs();
    let report = rate_limit_and_append_blocking(state, tenant, &series, &write.metadata)?;
    if !report.rejected.is_empty() {
        rejected += report.samples_rejected();
        reasons.push(describe_rejections(&report));
    }
    if rejected == 0 {
        return Ok(ExportMetricsServiceResponse::default());
    }
    tracing::debug!(tenant = %tenant, rejected, "otlp data points rejected");
    Ok(ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: reasons.join("; "),
        }),
    })
}

/// `POST /v1/metrics`: OTLP/HTTP metrics export. Un-gzipping, decoding, translation
/// and the append run on the blocking pool under the global decode budget (see
/// [`remote_write`]).
async fn otlp_metrics(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let encoding = match otlp_encoding(&headers) {
        Ok(encoding) => encoding,
        Err(e) => return e.into_otlp_http_response(OtlpEncoding::Protobuf),
    };
    match otlp_metrics_inner(&state, &headers, body, encoding).await {
        Ok(response) => otlp_success(encoding, &response),
        Err(e) => e.into_otlp_http_response(encoding),
    }
}

async fn otlp_metrics_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    encoding: OtlpEncoding,
) -> Result<ExportMetricsServiceResponse, ApiError> {
    let tenant = tenant_from_headers(headers)?;
    state.check_accepting_writes()?;
    let server = &state.config().server;
    let body = read_body_limited(headers, body, server.max_request_body_bytes.0).await?;
    let limit = server.max_decompressed_body_bytes.0;
    // A gzip body's real size is known only once inflated: reserve the limit, give
    // back the rest afterwards.
    let compressed = is_gzip(headers);
    let reserve = if compressed { limit } else { body.len() as u64 };
    let mut permit = state.decode_budget().acquire(reserve).await?;
    let work_state = state.clone();
    let headers = headers.clone();
    run_blocking(move || {
        let body = decode_content_encoding(&headers, body, limit)?;
        shrink_permit(&mut permit, body.len() as u64);
        let _permit = permit;
        let decoded = match encoding {
            OtlpEncoding::Protobuf => sightline_ingest::otlp::decode_protobuf(&body),
            OtlpEncoding::Json => sightline_ingest::otlp::decode_json(&body),
        };
        let request = decoded.map_err(|e| {
            work_state.self_metrics().add_invalid_write_request();
            ingest_error(e)
        })?;
        drop(body);
        export_otlp_metrics_blocking(&work_state, &tenant, &request)
    })
    .await
}

fn is_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip")
        })
}

/// The success response, in the request's encoding. JSON follows the proto3 JSON
/// mapping (camelCase, 64-bit integers as strings).
fn otlp_success(encoding: OtlpEncoding, response: &ExportMetricsServiceResponse) -> Response {
    otlp_body_response(StatusCode::OK, encoding, response, || {
        match &response.partial_success {
            None => serde_json::json!({}),
            Some(partial) => serde_json::json!({
                "partialSuccess": {
                    "rejectedDataPoints": partial.rejected_data_points.to_string(),
                    "errorMessage": partial.error_message,
                }
            }),
        }
    })
}

/// `POST /v1/logs`: not implemented yet; says so instead of pretending to store.
async fn otlp_logs(headers: HeaderMap) -> Response {
    not_implemented(&headers, "logs")
}

/// `POST /v1/traces`: not implemented yet; says so instead of pretending to store.
async fn otlp_traces(headers: HeaderMap) -> Response {
    not_implemented(&headers, "traces")
}

fn not_implemented(headers: &HeaderMap, signal: &str) -> Response {
    let encoding = otlp_encoding(headers).unwrap_or(OtlpEncoding::Protobuf);
    ApiError::new(
        ErrorKind::NotImplemented,
        format!("OTLP {signal} ingestion is not implemented yet; only metrics are stored"),
    )
    .into_otlp_http_response(encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use sightline_model::{Labels, Sample, TimeSeries};
    use std::io::Write;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[tokio::test]
    async fn body_limit_is_enforced_while_reading() {
        let body = Body::from(vec![0u8; 100]);
        let err = read_body_limited(&HeaderMap::new(), body, 99)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge);
        assert!(err.message.contains("server.max_request_body_bytes"));
        assert!(err.message.contains("99"));
        let ok = read_body_limited(&HeaderMap::new(), Body::from(vec![1u8; 99]), 99)
            .await
            .unwrap();
        assert_eq!(ok.len(), 99);
        let declared = headers(&[("content-length", "1000")]);
        let err = read_body_limited(&declared, Body::empty(), 10)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge);
    }

    #[test]
    fn gzip_is_decoded_under_a_limit() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&[7u8; 1000]).unwrap();
        let gz = Bytes::from(encoder.finish().unwrap());
        let gzip = headers(&[("content-encoding", "gzip")]);
        let plain = decode_content_encoding(&gzip, gz.clone(), 1000).unwrap();
        assert_eq!(plain.len(), 1000);
        let err = decode_content_encoding(&gzip, gz, 999).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge);
        assert!(err.message.contains("server.max_decompressed_body_bytes"));
        let err = decode_content_encoding(&gzip, Bytes::from_static(b"nope"), 10).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadData);
        let br = headers(&[("content-encoding", "br")]);
        assert!(decode_content_encoding(&br, Bytes::new(), 10).is_err());
        let none = decode_content_encoding(&HeaderMap::new(), Bytes::from_static(b"x"), 10);
        assert_eq!(none.unwrap(), Bytes::from_static(b"x"));
    }

    #[test]
    fn otlp_content_types() {
        let proto = headers(&[("content-type", "application/x-protobuf")]);
        assert_eq!(otlp_encoding(&proto).unwrap(), OtlpEncoding::Protobuf);
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(otlp_encoding(&json).unwrap(), OtlpEncoding::Json);
        let text = headers(&[("content-type", "text/plain")]);
        assert!(
            otlp_encoding(&text)
                .unwrap_err()
                .message
                .contains("text/plain")
        );
        assert!(otlp_encoding(&HeaderMap::new()).is_err());
    }

    #[test]
    fn ingest_errors_map_to_statuses() {
        let err = ingest_error(sightline_ingest::Error::TooLarge {
            decompressed: 10,
            limit: 5,
        });
        assert_eq!(err.kind, ErrorKind::TooLarge);
        assert!(err.message.contains("server.max_decompressed_body_bytes"));
        let err = ingest_error(sightline_ingest::Error::BadSnappy("corrupt input".into()));
        assert_eq!(err.kind, ErrorKind::BadData);
        assert!(err.message.contains("snappy"));
    }

    #[test]
    fn label_limits_drop_only_offending_series() {
        let series = |pairs: Vec<(String, String)>| TimeSeries {
            labels: Labels::from_pairs(pairs),
            samples: vec![Sample {
                timestamp: 1,
                value: 1.0,
            }],
            exemplars: Vec::new(),
        };
        let limits = LimitsConfig {
            max_label_names_per_series: 2,
            max_label_name_bytes: 8,
            max_label_value_bytes: 5,
            ..LimitsConfig::default()
        };
        let mut request = WriteRequest {
            series: vec![
                series(vec![("__name__".into(), "up".into())]),
                series(vec![
                    ("a".into(), "1".into()),
                    ("b".into(), "2".into()),
                    ("c".into(), "3".into()),
                ]),
                series(vec![("longername".into(), "1".into())]),
                series(vec![("a".into(), "toolong".into())]),
            ],
            metadata: Vec::new(),
        };
        let (dropped, reason) = enforce_label_limits(&mut request, &limits);
        assert_eq!(dropped, 3);
        assert!(
            reason
                .unwrap()
                .contains("limits.max_label_names_per_series")
        );
        assert_eq!(request.series.len(), 1);
    }
}
