//! OTLP/gRPC receiver on `server.otlp_grpc_listen`: the metrics service stores what it
//! receives (same translation, limits and store as OTLP/HTTP); the logs and trace
//! services answer `UNIMPLEMENTED`, honestly, until those stores exist.
//!
//! gzip-compressed requests are accepted; the largest message is
//! `server.max_decompressed_body_bytes`.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::error::{ApiError, ErrorKind};
use crate::ingest_http::export_otlp_metrics;
use crate::state::AppState;
use crate::tenant::tenant_from_headers;

/// The OTLP metrics service over the shared state.
#[derive(Debug, Clone)]
pub(crate) struct OtlpMetricsGrpc {
    state: AppState,
}

#[tonic::async_trait]
impl MetricsService for OtlpMetricsGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let started = std::time::Instant::now();
        let headers = request.metadata().clone().into_headers();
        let result = async {
            let tenant = tenant_from_headers(&headers)?;
            // Translation and the append run on the blocking pool; tonic has already
            // decoded the message (bounded by `max_decoding_message_size`).
            export_otlp_metrics(&self.state, &tenant, request.into_inner()).await
        }
        .await;
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(e) => e.kind.grpc_code(),
        };
        self.state.self_metrics().observe_http(
            "grpc:/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            grpc_code_as_http(code),
            started.elapsed(),
        );
        result
            .map(Response::new)
            .map_err(ApiError::into_grpc_status)
    }
}

/// HTTP status equivalent of a gRPC code for the request-duration histogram.
fn grpc_code_as_http(code: tonic::Code) -> u16 {
    match code {
        tonic::Code::Ok => 200,
        tonic::Code::InvalidArgument => 400,
        tonic::Code::ResourceExhausted => 429,
        tonic::Code::Unavailable => 503,
        tonic::Code::Unimplemented => 501,
        _ => 500,
    }
}

/// The OTLP logs service: not implemented yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OtlpLogsGrpc;

#[tonic::async_trait]
impl LogsService for OtlpLogsGrpc {
    async fn export(
        &self,
        _request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        Err(not_implemented("logs"))
    }
}

/// The OTLP trace service: not implemented yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OtlpTraceGrpc;

#[tonic::async_trait]
impl TraceService for OtlpTraceGrpc {
    async fn export(
        &self,
        _request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        Err(not_implemented("traces"))
    }
}

fn not_implemented(signal: &str) -> Status {
    ApiError::new(
        ErrorKind::NotImplemented,
        format!("OTLP {signal} ingestion is not implemented yet; only metrics are stored"),
    )
    .into_grpc_status()
}

/// Serves the OTLP gRPC services on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let max_message_bytes =
        usize::try_from(state.config().server.max_decompressed_body_bytes.0).unwrap_or(usize::MAX);
    let metrics = MetricsServiceServer::new(OtlpMetricsGrpc { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_bytes);
    let logs = LogsServiceServer::new(OtlpLogsGrpc)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_bytes);
    let traces = TraceServiceServer::new(OtlpTraceGrpc)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_bytes);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(metrics)
        .add_service(logs)
        .add_service(traces)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn logs_and_traces_say_unimplemented() {
        let status = OtlpLogsGrpc
            .export(Request::new(ExportLogsServiceRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert!(
            status
                .message()
                .contains("logs ingestion is not implemented")
        );
        let status = OtlpTraceGrpc
            .export(Request::new(ExportTraceServiceRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
    }
}

#[cfg(test)]
mod server_tests {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use sightline_model::TenantId;
    use sightline_tsdb::{MatchOp, Matcher};

    use super::*;
    use crate::http::test_support::TestApp;

    fn gauge_request(now_ns: u64) -> ExportMetricsServiceRequest {
        let point = NumberDataPoint {
            time_unix_nano: now_ns,
            value: Some(number_data_point::Value::AsDouble(4.5)),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("checkout".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "queue_depth".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![point],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[tokio::test]
    async fn grpc_export_is_stored_for_the_tenant() {
        let app = TestApp::spawn(|_| {}).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = app.state.clone();
        tokio::spawn(async move { serve(state, listener, std::future::pending()).await });
        let mut client = MetricsServiceClient::connect(format!("http://{address}"))
            .await
            .unwrap()
            .send_compressed(CompressionEncoding::Gzip);
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let mut request = Request::new(gauge_request(now_ns));
        request
            .metadata_mut()
            .insert("x-scope-orgid", "grpc-tenant".parse().unwrap());
        let response = client.export(request).await.unwrap().into_inner();
        assert_eq!(response.partial_success, None);
        let db = app
            .state
            .existing_metrics_db(&TenantId::parse("grpc-tenant").unwrap())
            .expect("tenant created");
        let matcher = Matcher::new(MatchOp::Equal, "job", "checkout").unwrap();
        let now = now_ns as i64;
        let found = db
            .select(&[matcher], now - 1_000_000_000, now + 1_000_000_000)
            .unwrap();
        assert_eq!(found.len(), 1, "{found:?}");

        let mut bad = Request::new(gauge_request(now_ns));
        bad.metadata_mut()
            .insert("x-scope-orgid", "a/b".parse().unwrap());
        let status = client.export(bad).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
