//! Tenant ids: the `X-Scope-OrgID` convention of Loki, Mimir and Tempo.

use crate::{Error, Result};

/// A validated tenant id. It names a directory under the data dir, so it is kept to
/// a safe alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// The tenant of requests that carry no `X-Scope-OrgID` header.
    pub const DEFAULT: &'static str = "default";
    /// Mimir's limit on tenant id length.
    pub const MAX_LEN: usize = 150;

    pub fn default_tenant() -> TenantId {
        TenantId(Self::DEFAULT.to_string())
    }

    /// Validates an id with Mimir's rules: 1–150 characters of `[A-Za-z0-9!-_.*'()]`,
    /// and never `.` or `..` (they would escape the data dir).
    pub fn parse(id: &str) -> Result<TenantId> {
        let invalid = |reason| Error::InvalidTenant {
            id: id.to_string(),
            reason,
        };
        if id.is_empty() {
            return Err(invalid("it is empty"));
        }
        if id.len() > Self::MAX_LEN {
            return Err(invalid("it is longer than 150 characters"));
        }
        if id == "." || id == ".." {
            return Err(invalid("it is a path component"));
        }
        let allowed = |c: char| {
            c.is_ascii_alphanumeric() || matches!(c, '!' | '-' | '_' | '.' | '*' | '\'' | '(' | ')')
        };
        if !id.chars().all(allowed) {
            return Err(invalid("only letters, digits and !-_.*'() are allowed"));
        }
        Ok(TenantId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_rules() {
        assert!(TenantId::parse("team-a").is_ok());
        assert!(TenantId::parse("..").is_err());
        assert!(TenantId::parse("a/b").is_err());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse(&"x".repeat(151)).is_err());
    }
}
