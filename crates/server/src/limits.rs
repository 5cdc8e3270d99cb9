//! Per-tenant ingestion rate limits: one token bucket of samples per tenant.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;
use sightline_model::TenantId;

use crate::error::{ApiError, ErrorKind};

/// One tenant's bucket: `tokens` samples may be written now; it refills at `rate` per
/// second up to `burst`.
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    tokens: f64,
    last_refill: Instant,
}

/// Token buckets of every tenant that wrote something.
#[derive(Debug)]
pub(crate) struct IngestionRateLimiter {
    rate_per_second: u64,
    burst: u64,
    buckets: Mutex<HashMap<TenantId, TokenBucket>>,
}

impl IngestionRateLimiter {
    pub(crate) fn new(rate_per_second: u64, burst: u64) -> IngestionRateLimiter {
        IngestionRateLimiter {
            rate_per_second,
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `samples` tokens from `tenant`'s bucket, or refuses the whole request (429
    /// naming the limit) when there are not enough. A request with more samples than
    /// the burst could never succeed, so it is refused as bad data (400, naming
    /// `limits.ingestion_burst_samples`): a 429 would make Prometheus retry it forever.
    pub(crate) fn check(&self, tenant: &TenantId, samples: u64) -> Result<(), ApiError> {
        self.check_at(tenant, samples, Instant::now())
    }

    /// [`IngestionRateLimiter::check`] with an explicit clock, for tests.
    pub(crate) fn check_at(
        &self,
        tenant: &TenantId,
        samples: u64,
        now: Instant,
    ) -> Result<(), ApiError> {
        if samples == 0 {
            return Ok(());
        }
        if samples > self.burst {
            return Err(ApiError::new(
                ErrorKind::BadData,
                format!(
                    "request has {samples} samples, more than the burst limit of {} \
                     (limits.ingestion_burst_samples); split it into smaller requests",
                    self.burst
                ),
            ));
        }
        let burst = self.burst as f64;
        let mut buckets = self.buckets.lock();
        let bucket = buckets.entry(tenant.clone()).or_insert(TokenBucket {
            tokens: burst,
            last_refill: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last_refill);
        bucket.tokens =
            (bucket.tokens + elapsed.as_secs_f64() * self.rate_per_second as f64).min(burst);
        bucket.last_refill = now;
        let wanted = samples as f64;
        if bucket.tokens < wanted {
            return Err(ApiError::new(
                ErrorKind::RateLimited,
                format!(
                    "ingestion rate limit exceeded for tenant {tenant:?}: request has {samples} \
                     samples; limit is {} samples/s (limits.ingestion_rate_samples_per_second) \
                     with a burst of {} (limits.ingestion_burst_samples)",
                    self.rate_per_second, self.burst
                ),
            ));
        }
        bucket.tokens -= wanted;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    #[test]
    fn burst_then_refill() {
        let limiter = IngestionRateLimiter::new(100, 200);
        let start = Instant::now();
        let a = tenant("a");
        assert!(limiter.check_at(&a, 150, start).is_ok());
        assert!(limiter.check_at(&a, 50, start).is_ok());
        let err = limiter.check_at(&a, 1, start).unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert!(
            err.message
                .contains("limits.ingestion_rate_samples_per_second")
        );
        assert!(err.message.contains("100 samples/s"), "{}", err.message);
        // Half a second refills 50 samples.
        let later = start + Duration::from_millis(500);
        assert!(limiter.check_at(&a, 50, later).is_ok());
        assert!(limiter.check_at(&a, 1, later).is_err());
        // A long pause refills only up to the burst.
        let much_later = later + Duration::from_secs(3600);
        assert!(limiter.check_at(&a, 200, much_later).is_ok());
        assert!(limiter.check_at(&a, 1, much_later).is_err());
    }

    #[test]
    fn tenants_are_independent() {
        let limiter = IngestionRateLimiter::new(10, 10);
        let now = Instant::now();
        assert!(limiter.check_at(&tenant("a"), 10, now).is_ok());
        assert!(limiter.check_at(&tenant("a"), 1, now).is_err());
        assert!(limiter.check_at(&tenant("b"), 10, now).is_ok());
    }

    #[test]
    fn request_larger_than_burst_is_refused_by_name() {
        let limiter = IngestionRateLimiter::new(10, 20);
        let err = limiter
            .check_at(&tenant("a"), 21, Instant::now())
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadData);
        assert_eq!(err.kind.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(err.message.contains("limits.ingestion_burst_samples"));
        // Refusal does not consume tokens.
        assert!(limiter.check_at(&tenant("a"), 20, Instant::now()).is_ok());
    }

    #[test]
    fn empty_request_is_free() {
        let limiter = IngestionRateLimiter::new(1, 1);
        let now = Instant::now();
        assert!(limiter.check_at(&tenant("a"), 1, now).is_ok());
        assert!(limiter.check_at(&tenant("a"), 0, now).is_ok());
    }
}
