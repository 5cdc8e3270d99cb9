//! Which tenant a request belongs to.

use axum::http::HeaderMap;
use sightline_model::TenantId;

use crate::error::ApiError;

/// The header that names the tenant (Loki/Mimir/Tempo convention).
pub(crate) const TENANT_HEADER: &str = "X-Scope-OrgID";

/// The request's tenant: `X-Scope-OrgID`, or `default` when absent.
pub(crate) fn tenant_from_headers(headers: &HeaderMap) -> Result<TenantId, ApiError> {
    let Some(value) = headers.get(TENANT_HEADER) else {
        return Ok(TenantId::default_tenant());
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_data(format!("{TENANT_HEADER} header is not valid text")))?;
    TenantId::parse(text.trim()).map_err(|e| ApiError::bad_data(e.to_string()))
}
