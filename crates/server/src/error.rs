//! The one mapping from what went wrong to what a client sees: HTTP status,
//! Prometheus `errorType`, remote_write text body, OTLP `google.rpc.Status`, gRPC code.
//! Handlers build an [`ApiError`] and never pick status codes themselves.

use axum::http::StatusCode;
use axum::response::Response;

/// What kind of failure, independent of the API that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The request is malformed or names something invalid (400, `bad_data`).
    BadData,
    /// The body (compressed or decompressed) is over a size limit (413).
    TooLarge,
    /// A tenant limit (rate, series) was hit; retrying later may succeed (429).
    RateLimited,
    /// The query could not be executed (422, `execution`).
    Execution,
    /// The query ran out of time (503, `timeout`).
    Timeout,
    /// Not ready or shutting down (503, `unavailable`).
    Unavailable,
    /// A path or resource that does not exist (404, `not_found`).
    NotFound,
    /// An endpoint that is switched off by configuration, e.g. the admin API (403,
    /// `unavailable` as Prometheus says for its disabled admin API).
    Forbidden,
    /// A feature of a protocol we do not serve yet (501).
    NotImplemented,
    /// The request's Content-Type is not one this endpoint reads (415).
    UnsupportedMediaType,
    /// Storage or another internal failure (500, `internal`).
    Internal,
}

impl ErrorKind {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadData => StatusCode::BAD_REQUEST,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Prometheus HTTP API `errorType`.
    pub(crate) fn prometheus_error_type(self) -> &'static str {
        match self {
            ErrorKind::BadData | ErrorKind::TooLarge | ErrorKind::UnsupportedMediaType => {
                "bad_data"
            }
            ErrorKind::RateLimited => "unavailable",
            ErrorKind::Execution => "execution",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable | ErrorKind::Forbidden => "unavailable",
            ErrorKind::NotFound => "not_found",
            ErrorKind::NotImplemented | ErrorKind::Internal => "internal",
        }
    }

    /// gRPC status code.
    pub(crate) fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorKind::BadData => tonic::Code::InvalidArgument,
            ErrorKind::TooLarge => tonic::Code::InvalidArgument,
            ErrorKind::RateLimited => tonic::Code::ResourceExhausted,
            ErrorKind::Execution => tonic::Code::InvalidArgument,
            ErrorKind::Timeout => tonic::Code::DeadlineExceeded,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::Forbidden => tonic::Code::PermissionDenied,
            ErrorKind::NotImplemented => tonic::Code::Unimplemented,
            ErrorKind::UnsupportedMediaType => tonic::Code::InvalidArgument,
            ErrorKind::Internal => tonic::Code::Internal,
        }
    }
}

/// An error on its way to a client: a kind and a message naming what was wrong.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::BadData, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Internal, message)
    }
}

/// How a PromQL failure reaches a client, as Prometheus' `returnAPIError`: a query
/// that does not parse is the client's (`bad_data`, named as the `query` parameter); a
/// query that hits a limit or cannot be evaluated is `execution`; running out of time
/// is `timeout`; a store failure is `internal`.
impl From<sightline_promql::Error> for ApiError {
    fn from(error: sightline_promql::Error) -> ApiError {
        use sightline_promql::Error;
        match error {
            Error::Parse(message) => {
                ApiError::bad_data(format!("invalid parameter \"query\": {message}"))
            }
            Error::Execution(_) | Error::Limit(_) => {
                ApiError::new(ErrorKind::Execution, error.to_string())
            }
            Error::Timeout { .. } => ApiError::new(ErrorKind::Timeout, error.to_string()),
            Error::Storage(_) => ApiError::internal(error.to_string()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    /// Prometheus HTTP API error body:
    /// `{"status":"error","errorType":"bad_data","error":"..."}`.
    pub(crate) fn into_prometheus_response(self) -> axum::response::Response {
        use axum::response::IntoResponse;
        /// Field order as Prometheus writes it: status, errorType, error.
        #[derive(serde::Serialize)]
        struct PrometheusErrorBody<'a> {
            status: &'static str,
            #[serde(rename = "errorType")]
            error_type: &'static str,
            error: &'a str,
        }
        let body = PrometheusErrorBody {
            status: "error",
            error_type: self.kind.prometheus_error_type(),
            error: &self.message,
        };
        (self.kind.status(), axum::Json(body)).into_response()
    }

    /// Plain-text body, as Prometheus' remote_write receiver answers.
    pub(crate) fn into_text_response(self) -> axum::response::Response {
        use axum::response::IntoResponse;
        (self.kind.status(), format!("{}\n", self.message)).into_response()
    }

    pub(crate) fn into_grpc_status(self) -> tonic::Status {
        tonic::Status::new(self.kind.grpc_code(), self.message)
    }

    /// OTLP/HTTP error: a `google.rpc.Status` in the request's encoding, with the HTTP
    /// status the OTLP/HTTP spec asks for (400, 413, 429, 503 …). 429 and 503 carry
    /// `Retry-After` so exporters back off.
    pub(crate) fn into_otlp_http_response(self, encoding: OtlpEncoding) -> Response {
        let status = self.kind.status();
        let rpc_status = RpcStatus {
            code: self.kind.grpc_code() as i32,
            message: self.message,
        };
        let mut response = otlp_body_response(
            status,
            encoding,
            &rpc_status,
            || serde_json::json!({ "code": rpc_status.code, "message": rpc_status.message }),
        );
        if matches!(self.kind, ErrorKind::RateLimited | ErrorKind::Unavailable) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// Which OTLP/HTTP encoding a request used; its response uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OtlpEncoding {
    /// `application/x-protobuf`
    Protobuf,
    /// `application/json`
    Json,
}

impl OtlpEncoding {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            OtlpEncoding::Protobuf => "application/x-protobuf",
            OtlpEncoding::Json => "application/json",
        }
    }
}

/// `google.rpc.Status` without details: what OTLP/HTTP error bodies carry.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub(crate) code: i32,
    #[prost(string, tag = "2")]
    pub(crate) message: String,
}

/// A response carrying `message` as protobuf, or `json()` as JSON.
pub(crate) fn otlp_body_response(
    status: StatusCode,
    encoding: OtlpEncoding,
    message: &impl prost::Message,
    json: impl FnOnce() -> serde_json::Value,
) -> Response {
    use axum::response::IntoResponse;
    let body = match encoding {
        OtlpEncoding::Protobuf => message.encode_to_vec(),
        OtlpEncoding::Json => json().to_string().into_bytes(),
    };
    (
        status,
        [(axum::http::header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    async fn body_bytes(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    #[test]
    fn kinds_map_to_statuses_and_codes() {
        let cases = [
            (
                ErrorKind::BadData,
                400,
                "bad_data",
                tonic::Code::InvalidArgument,
            ),
            (
                ErrorKind::TooLarge,
                413,
                "bad_data",
                tonic::Code::InvalidArgument,
            ),
            (
                ErrorKind::RateLimited,
                429,
                "unavailable",
                tonic::Code::ResourceExhausted,
            ),
            (
                ErrorKind::Execution,
                422,
                "execution",
                tonic::Code::InvalidArgument,
            ),
            (
                ErrorKind::Timeout,
                503,
                "timeout",
                tonic::Code::DeadlineExceeded,
            ),
            (
                ErrorKind::Unavailable,
                503,
                "unavailable",
                tonic::Code::Unavailable,
            ),
            (ErrorKind::NotFound, 404, "not_found", tonic::Code::NotFound),
            (
                ErrorKind::Forbidden,
                403,
                "unavailable",
                tonic::Code::PermissionDenied,
            ),
            (
                ErrorKind::NotImplemented,
                501,
                "internal",
                tonic::Code::Unimplemented,
            ),
            (ErrorKind::Internal, 500, "internal", tonic::Code::Internal),
            (
                ErrorKind::UnsupportedMediaType,
                415,
                "bad_data",
                tonic::Code::InvalidArgument,
            ),
        ];
        for (kind, status, error_type, code) in cases {
            assert_eq!(kind.status().as_u16(), status, "{kind:?}");
            assert_eq!(kind.prometheus_error_type(), error_type, "{kind:?}");
            assert_eq!(kind.grpc_code(), code, "{kind:?}");
            let grpc = ApiError::new(kind, "why").into_grpc_status();
            assert_eq!(grpc.code(), code);
            assert_eq!(grpc.message(), "why");
        }
    }

    #[test]
    fn promql_errors_map_like_prometheus() {
        use sightline_promql::Error;
        let cases = [
            (Error::Parse("1:4: unexpected".into()), ErrorKind::BadData),
            (
                Error::Execution("many-to-many".into()),
                ErrorKind::Execution,
            ),
            (Error::Limit("too many".into()), ErrorKind::Execution),
            (
                Error::Timeout {
                    phase: "query queue",
                    limit_seconds: 1.0,
                },
                ErrorKind::Timeout,
            ),
            (Error::Storage("disk".into()), ErrorKind::Internal),
        ];
        for (error, kind) in cases {
            assert_eq!(ApiError::from(error).kind, kind);
        }
        let parse = ApiError::from(Error::Parse("1:4: unexpected".into()));
        assert_eq!(
            parse.message,
            "invalid parameter \"query\": 1:4: unexpected"
        );
    }

    #[tokio::test]
    async fn prometheus_and_text_shapes() {
        let response = ApiError::bad_data("label \"a b\" is not valid").into_prometheus_response();
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"status":"error","errorType":"bad_data","error":"label \"a b\" is not valid"})
        );
        let response = ApiError::new(ErrorKind::TooLarge, "too big").into_text_response();
        assert_eq!(response.status(), 413);
        assert_eq!(body_bytes(response).await, b"too big\n");
    }

    #[tokio::test]
    async fn otlp_status_in_both_encodings() {
        let response = ApiError::new(ErrorKind::RateLimited, "slow down")
            .into_otlp_http_response(OtlpEncoding::Protobuf);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["content-type"], "application/x-protobuf");
        let status = RpcStatus::decode(body_bytes(response).await.as_slice()).unwrap();
        assert_eq!(status.code, tonic::Code::ResourceExhausted as i32);
        assert_eq!(status.message, "slow down");

        let response = ApiError::bad_data("bad").into_otlp_http_response(OtlpEncoding::Json);
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
        assert_eq!(body, serde_json::json!({"code": 3, "message": "bad"}));
    }
}
