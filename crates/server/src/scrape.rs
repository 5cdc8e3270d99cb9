//! Scraping wired to the stores: the `scrape_configs` jobs run by
//! [`sightline_scrape::ScrapeManager`], whose samples are appended exactly like a
//! remote_write request's (rate limit, tenant store, rejection accounting) on the
//! blocking pool.

use std::sync::Arc;

use sightline_model::{TenantId, WriteRequest};
use sightline_scrape::{ManagerOptions, ScrapeManager, ScrapeSink};

use crate::ingest_http::{rate_limit_and_append_blocking, run_blocking};
use crate::state::AppState;

/// Appends scraped samples to the job's tenant.
#[derive(Debug, Clone)]
struct StoreSink {
    state: AppState,
}

impl ScrapeSink for StoreSink {
    async fn append(&self, tenant: String, request: WriteRequest) -> Result<(), String> {
        let tenant = TenantId::parse(&tenant).map_err(|e| e.to_string())?;
        let state = self.state.clone();
        run_blocking(move || {
            rate_limit_and_append_blocking(
                &state,
                &tenant,
                &request.series_refs(),
                &request.metadata,
            )
        })
        .await
        .map(|_| ())
        .map_err(|e| e.message)
    }
}

/// Starts every configured job, or nothing when there are none.
pub(crate) fn start(state: &AppState) -> anyhow::Result<Option<ScrapeManager>> {
    let jobs = state.config().scrape_configs.clone();
    if jobs.is_empty() {
        return Ok(None);
    }
    let job_count = jobs.len();
    let limits = &state.config().limits;
    let options = ManagerOptions {
        user_agent: format!("Sightline/{}", env!("CARGO_PKG_VERSION")),
        label_limits: sightline_pipeline::LabelLimits {
            max_label_names_per_series: limits.max_label_names_per_series,
            max_label_name_bytes: limits.max_label_name_bytes,
            max_label_value_bytes: limits.max_label_value_bytes,
        },
        ..ManagerOptions::default()
    };
    let sink = Arc::new(StoreSink {
        state: state.clone(),
    });
    let manager = ScrapeManager::start(jobs, sink, options)?;
    state.self_metrics().set_scrape_stats(manager.stats());
    tracing::info!(jobs = job_count, "scraping started");
    Ok(Some(manager))
}
