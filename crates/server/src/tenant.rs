//! Which tenant a request belongs to.

use axum::http::HeaderMap;
use sightline_model::TenantId;

use crate::error::ApiError;
use crate::state::LOCK_FILE;

/// The header that names the tenant (Loki/Mimir/Tempo convention).
pub(crate) const TENANT_HEADER: &str = "X-Scope-OrgID";

/// The request's tenant: `X-Scope-OrgID`, or `default` when absent. Names that would
/// collide with the data dir's own files are refused (400), see [`reserved_reason`].
pub(crate) fn tenant_from_headers(headers: &HeaderMap) -> Result<TenantId, ApiError> {
    let Some(value) = headers.get(TENANT_HEADER) else {
        return Ok(TenantId::default_tenant());
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_data(format!("{TENANT_HEADER} header is not valid text")))?;
    let tenant = TenantId::parse(text.trim()).map_err(|e| ApiError::bad_data(e.to_string()))?;
    if let Some(reason) = reserved_reason(&tenant) {
        return Err(ApiError::bad_data(format!(
            "invalid tenant id {:?} in {TENANT_HEADER}: {reason}",
            tenant.as_str()
        )));
    }
    Ok(tenant)
}

/// Why `tenant` may not be used, when it names a file of the data dir itself: the
/// `LOCK` file (compared case-insensitively, for case-insensitive file systems) or
/// anything starting with `.` (hidden and temporary files).
pub(crate) fn reserved_reason(tenant: &TenantId) -> Option<&'static str> {
    let name = tenant.as_str();
    if name.eq_ignore_ascii_case(LOCK_FILE) {
        Some("it is reserved (the data dir's LOCK file)")
    } else if name.starts_with('.') {
        Some("it must not start with '.' (reserved for the data dir's own files)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tenant_of(value: &str) -> Result<TenantId, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(TENANT_HEADER, HeaderValue::from_str(value).unwrap());
        tenant_from_headers(&headers)
    }

    #[test]
    fn reserved_names_are_refused_clearly() {
        for name in ["LOCK", "lock", ".hidden", ".tmp-1", "..."] {
            let err = tenant_of(name).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::BadData, "{name}");
            assert!(err.message.contains("invalid tenant id"), "{}", err.message);
            assert!(
                err.message.contains("reserved") || err.message.contains("'.'"),
                "{}",
                err.message
            );
        }
        assert_eq!(tenant_of("LOCKS").unwrap().as_str(), "LOCKS");
        assert_eq!(tenant_of("a.b").unwrap().as_str(), "a.b");
        assert_eq!(
            tenant_from_headers(&HeaderMap::new()).unwrap(),
            TenantId::default_tenant()
        );
    }
}
