//! [`QueryRunner`]: runs PromQL queries for the HTTP API within the `query:` limits of
//! the config.
//!
//! At most `query.max_concurrent` queries are evaluated at once; the others wait in a
//! FIFO queue (a semaphore), and the time they wait counts against their timeout, so
//! a query never takes longer than `query.timeout` (or the request's lower `timeout`)
//! from the moment it arrived. Evaluation runs on the blocking pool: a heavy query
//! never stalls the async runtime that serves ingest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_promql::{Engine, EngineOptions, Error, Millis, QueryResult};
use sightline_tsdb::Db;
use tokio::sync::Semaphore;

use crate::config::QueryConfig;
use crate::error::{ApiError, ErrorKind};
use crate::query_store::{ReadLimits, TenantQueryable};
use crate::self_metrics::SelfMetrics;

/// When a query is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryTime {
    /// At one time (ms).
    Instant(Millis),
    /// At every `step` from `start` to `end` inclusive (ms).
    Range {
        start: Millis,
        end: Millis,
        step: Millis,
    },
}

/// One query as the API received it.
#[derive(Debug, Clone)]
pub(crate) struct QueryRequest {
    pub(crate) query: String,
    pub(crate) time: QueryTime,
    /// The request's `timeout`; only lowers `query.timeout`.
    pub(crate) timeout: Option<Duration>,
    /// The request's `lookback_delta`; replaces `query.lookback_delta`.
    pub(crate) lookback_delta: Option<Duration>,
}

/// Evaluation slots and the configured limits. One per server.
#[derive(Debug)]
pub(crate) struct QueryRunner {
    slots: Arc<Semaphore>,
    config: QueryConfig,
}

impl QueryRunner {
    pub(crate) fn new(config: &QueryConfig) -> QueryRunner {
        QueryRunner {
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            config: config.clone(),
        }
    }

    /// Waits for a slot, then evaluates `request` over `db` (`None`: a tenant without
    /// data) on the blocking pool.
    pub(crate) async fn run(
        &self,
        db: Option<Arc<Db>>,
        metrics: &SelfMetrics,
        request: QueryRequest,
    ) -> Result<QueryResult, ApiError> {
        let arrived = Instant::now();
        let configured_timeout = self.config.timeout.0;
        let timeout = request
            .timeout
            .map_or(configured_timeout, |asked| asked.min(configured_timeout));
        let timeout_seconds = timeout.as_secs_f64();
        let queued = metrics.query_queued();
        let slot = Arc::clone(&self.slots).acquire_owned();
        let permit = match tokio::time::timeout(timeout, slot).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => {
                return Err(ApiError::new(
                    ErrorKind::Unavailable,
                    "the query queue is closed: the server is shutting down",
                ));
            }
            Err(_elapsed) => {
                return Err(Error::Timeout {
                    phase: "query queue",
                    limit_seconds: timeout_seconds,
                }
                .into());
            }
        };
        drop(queued);
        let in_flight = metrics.query_in_flight();
        let options = EngineOptions {
            lookback_delta: request
                .lookback_delta
                .unwrap_or(self.config.lookback_delta.0),
            max_samples: self.config.max_samples,
            timeout: timeout.saturating_sub(arrived.elapsed()),
            // The API refuses `(end - start) / step > max_points_per_series` as
            // Prometheus does; the engine counts the points themselves, one more.
            max_points_per_series: self.config.max_points_per_series.saturating_add(1),
            delayed_name_removal: false,
            rollups: true,
        };
        let store = TenantQueryable::new(
            db,
            ReadLimits {
                max_series: self.config.max_series,
                max_samples: self.config.max_samples,
                deadline: arrived.checked_add(timeout),
                timeout_seconds,
            },
        );
        let evaluation = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _in_flight = in_flight;
            let engine = Engine::new(options);
            match request.time {
                QueryTime::Instant(time) => engine.instant_query(&store, &request.query, time),
                QueryTime::Range { start, end, step } => {
                    engine.range_query(&store, &request.query, start, end, step)
                }
            }
        });
        let outcome = evaluation
            .await
            .map_err(|e| ApiError::internal(format!("query evaluation task failed: {e}")))?;
        outcome.map_err(|error| match error {
            // The engine only knew the time left after the queue; name the whole limit.
            Error::Timeout { phase, .. } => ApiError::from(Error::Timeout {
                phase,
                limit_seconds: timeout_seconds,
            }),
            other => ApiError::from(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, timeout: Option<Duration>) -> QueryRequest {
        QueryRequest {
            query: query.to_string(),
            time: QueryTime::Instant(1_000),
            timeout,
            lookback_delta: None,
        }
    }

    #[tokio::test]
    async fn queued_queries_wait_and_their_wait_counts_against_the_timeout() {
        let config = QueryConfig {
            max_concurrent: 1,
            ..QueryConfig::default()
        };
        let runner = Arc::new(QueryRunner::new(&config));
        let metrics = Arc::new(SelfMetrics::default());
        let held = Arc::clone(&runner.slots).acquire_owned().await.unwrap();
        // No slot: a query with a short timeout gives up in the queue.
        let error = runner
            .run(
                None,
                &metrics,
                request("1", Some(Duration::from_millis(20))),
            )
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Timeout);
        assert_eq!(
            error.message,
            "query timed out in query queue; limit is 0.02s (query.timeout)"
        );
        // A query without a short timeout waits for the slot, then succeeds.
        let waiting = {
            let (runner, metrics) = (Arc::clone(&runner), Arc::clone(&metrics));
            tokio::spawn(async move { runner.run(None, &metrics, request("1 + 1", None)).await })
        };
        let rendered = || metrics.render(&[]);
        while !rendered().contains("sightline_queries_queued 1\n") {
            tokio::task::yield_now().await;
        }
        drop(held);
        let result = waiting.await.unwrap().unwrap();
        assert_eq!(
            result.value,
            sightline_promql::Value::Scalar { t: 1_000, v: 2.0 }
        );
        assert!(rendered().contains("sightline_queries_queued 0\n"));
        assert!(rendered().contains("sightline_queries_in_flight 0\n"));
    }

    #[tokio::test]
    async fn request_timeout_never_raises_the_configured_one() {
        let config = QueryConfig {
            timeout: crate::config::ConfigDuration(Duration::from_millis(0)),
            ..QueryConfig::default()
        };
        let runner = QueryRunner::new(&config);
        let error = runner
            .run(
                None,
                &SelfMetrics::default(),
                request("up", Some(Duration::from_secs(60))),
            )
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Timeout, "{}", error.message);
    }
}
