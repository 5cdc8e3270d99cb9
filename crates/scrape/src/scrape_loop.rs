//! One target's loop: every `scrape_interval`, at an offset within the interval fixed
//! by the target's identity (so targets spread out and keep their phase across
//! restarts), GET its metrics, turn them into samples and hand them to the sink.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header;
use sightline_ingest::exposition::{self, Format};
use sightline_model::time;
use tokio::sync::oneshot;

use crate::config::{Authorization, BasicAuth};
use crate::samples::{SampleRules, SeriesMemory};
use crate::target::Target;
use crate::{MAX_BODY_BYTES, ScrapeSink, ScrapeStats};

/// Prometheus 2.42's `Accept` header: OpenMetrics preferred, then text 0.0.4.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// How a loop is told to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The target is gone: write staleness markers for its series.
    TargetRemoved,
    /// The server is stopping: write nothing more.
    Shutdown,
}

/// What every target of one job shares.
#[derive(Debug)]
pub(crate) struct JobContext {
    pub(crate) job_name: String,
    pub(crate) tenant: String,
    pub(crate) client: reqwest::Client,
    pub(crate) rules: SampleRules,
    pub(crate) basic_auth: Option<BasicAuth>,
    pub(crate) authorization: Option<Authorization>,
    /// Largest decompressed body.
    pub(crate) body_limit: u64,
    pub(crate) stats: Arc<ScrapeStats>,
}

/// Runs until `stop` fires (or its sender is dropped, which counts as shutdown).
pub(crate) async fn run<S: ScrapeSink>(
    job: Arc<JobContext>,
    target: Target,
    sink: Arc<S>,
    mut stop: oneshot::Receiver<Stop>,
) {
    let mut memory = SeriesMemory::default();
    let interval_ms = target.interval.as_millis().max(1) as i64;
    let offset_ms = (target.key() % interval_ms as u64) as i64;
    let now_ms = time::to_millis(time::now());
    let wait_ms = (offset_ms - now_ms.rem_euclid(interval_ms)).rem_euclid(interval_ms);
    let first = tokio::time::Instant::now() + Duration::from_millis(wait_ms as u64);
    let mut ticker = tokio::time::interval_at(first, target.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let reason = loop {
        tokio::select! {
            reason = &mut stop => break reason.unwrap_or(Stop::Shutdown),
            _ = ticker.tick() => {}
        }
        let scrape_ms = time::to_millis(time::now());
        let started = Instant::now();
        let fetched = tokio::select! {
            reason = &mut stop => break reason.unwrap_or(Stop::Shutdown),
            fetched = fetch(&job, &target) => fetched,
        };
        let exposition = fetched.and_then(|(body, format)| {
            exposition::parse(&body, format).map_err(|e| format!("parsing the scraped body: {e}"))
        });
        let duration = started.elapsed().as_secs_f64();
        let (request, summary) =
            memory.scrape(&job.rules, &target.labels, exposition, scrape_ms, duration);
        job.stats.record_scrape(summary.up);
        if let Some(error) = &summary.error {
            tracing::debug!(job = %job.job_name, target = %target.url, error = %error, "scrape failed");
        }
        if let Err(e) = sink.append(job.tenant.clone(), request).await {
            job.stats.record_append_failure();
            tracing::warn!(job = %job.job_name, target = %target.url, error = %e, "storing scraped samples failed");
        }
    };
    if reason == Stop::TargetRemoved
        && let Some(request) = memory.end_of_run(&target.labels, time::to_millis(time::now()))
        && let Err(e) = sink.append(job.tenant.clone(), request).await
    {
        tracing::warn!(job = %job.job_name, target = %target.url, error = %e, "storing staleness markers failed");
    }
}

/// GETs the target's metrics: the body (decompressed) and the format its
/// `Content-Type` announces.
async fn fetch(job: &JobContext, target: &Target) -> Result<(Bytes, Format), String> {
    let mut request = job
        .client
        .get(target.url.clone())
        .timeout(target.timeout)
        .header(header::ACCEPT, ACCEPT_HEADER)
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", target.timeout.as_secs_f64()),
        );
    if let Some(basic) = &job.basic_auth {
        let password = match (&basic.password, &basic.password_file) {
            (Some(password), _) => Some(password.clone()),
            (None, Some(file)) => Some(read_secret(file)?),
            (None, None) => None,
        };
        request = request.basic_auth(&basic.username, password);
    }
    if let Some(authorization) = &job.authorization {
        let credentials = match (&authorization.credentials, &authorization.credentials_file) {
            (Some(credentials), _) => credentials.clone(),
            (None, Some(file)) => read_secret(file)?,
            (None, None) => String::new(),
        };
        request = request.header(
            header::AUTHORIZATION,
            format!("{} {credentials}", authorization.kind),
        );
    }
    let mut response = request.send().await.map_err(describe_request_error)?;
    let status = response.status();
    if status != http::StatusCode::OK {
        return Err(format!("server returned HTTP status {status}"));
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let gzipped = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe_request_error)? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > job.body_limit {
            return Err(body_limit_error(job.body_limit));
        }
    }
    let body = if gzipped {
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .take(job.body_limit.saturating_add(1))
            .read_to_end(&mut decoded)
            .map_err(|e| format!("gzip decompression failed: {e}"))?;
        if decoded.len() as u64 > job.body_limit {
            return Err(body_limit_error(job.body_limit));
        }
        decoded
    } else {
        body
    };
    Ok((Bytes::from(body), Format::from_content_type(&content_type)))
}

fn body_limit_error(limit: u64) -> String {
    format!("body size limit exceeded: more than {limit} bytes (body_size_limit)")
}

fn describe_request_error(error: reqwest::Error) -> String {
    if error.is_timeout() {
        return "scrape timed out (scrape_timeout)".to_string();
    }
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A password or token file, re-read for every scrape as Prometheus does, trimmed.
fn read_secret(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_string())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Upper bound used when a job sets no `body_size_limit`.
pub(crate) fn body_limit(configured: u64) -> u64 {
    if configured == 0 {
        MAX_BODY_BYTES
    } else {
        configured.min(MAX_BODY_BYTES)
    }
}
