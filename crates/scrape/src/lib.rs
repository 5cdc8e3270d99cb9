//! Scraping of Prometheus/OpenMetrics targets: `scrape_configs` in Prometheus' YAML
//! shape ([`config`]), target discovery from `static_configs` and watched
//! `file_sd_configs` ([`discovery`]), target labels and relabeling ([`target`]), one
//! loop per target that GETs, parses ([`sightline_ingest::exposition`]), applies
//! `honor_labels`/`honor_timestamps`/`metric_relabel_configs`/`sample_limit`, writes
//! staleness markers and the report series `up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling` and
//! `scrape_series_added` ([`samples`]), and a [`ScrapeManager`] that runs them all.
//!
//! This crate must never know the store, the server's HTTP API or its tenants'
//! lifecycle: it hands each scrape's [`sightline_model::WriteRequest`] to a
//! [`ScrapeSink`] with the job's tenant name, and the server decides what to do with
//! it. It has no on-disk format; it only reads file SD files.

pub mod config;
pub mod discovery;
mod manager;
pub mod samples;
mod scrape_loop;
pub mod target;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

pub use config::ScrapeConfig;
pub use manager::{ManagerOptions, ScrapeManager};
pub use scrape_loop::ACCEPT_HEADER;
use sightline_model::WriteRequest;

/// Largest scraped body (after decompression) whatever a job's `body_size_limit`.
pub const MAX_BODY_BYTES: u64 = 256 << 20;

/// Where scraped samples go: the server implements it over its stores.
pub trait ScrapeSink: Send + Sync + 'static {
    /// Stores one scrape's samples for `tenant` (the job's `tenant`); the error is
    /// logged and counted, never retried (the next scrape brings fresh samples).
    fn append(
        &self,
        tenant: String,
        request: WriteRequest,
    ) -> impl Future<Output = std::result::Result<(), String>> + Send;
}

/// Counters of the scrapes, for the server's self-metrics.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    /// Active targets per job.
    targets: parking_lot::Mutex<BTreeMap<String, usize>>,
    scrapes: AtomicU64,
    failures: AtomicU64,
    append_failures: AtomicU64,
}

impl ScrapeStats {
    pub(crate) fn set_targets(&self, job: &str, count: usize) {
        self.targets.lock().insert(job.to_string(), count);
    }

    pub(crate) fn record_scrape(&self, up: bool) {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        if !up {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_append_failure(&self) {
        self.append_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Active targets per job.
    pub fn targets(&self) -> BTreeMap<String, usize> {
        self.targets.lock().clone()
    }

    /// Scrapes done, all jobs.
    pub fn scrapes_total(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }

    /// Scrapes that failed (up = 0), all jobs.
    pub fn scrape_failures_total(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Scrapes whose samples the sink refused.
    pub fn append_failures_total(&self) -> u64 {
        self.append_failures.load(Ordering::Relaxed)
    }
}

/// Errors of starting the scrapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("scrape job name {0:?} is used more than once (job_name must be unique)")]
    DuplicateJob(String),
    #[error("cannot build the scrape HTTP client: {0}")]
    HttpClient(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
