//! Sightline's own metrics, served at `GET /metrics` in the Prometheus text exposition
//! format 0.0.4. A small registry of atomics and locked maps: no metrics crate needed.
//!
//! Every metric name is defined here, once.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use sightline_model::TenantId;
use sightline_tsdb::{Db, DbStats};

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) const SAMPLES_RECEIVED_TOTAL: &str = "sightline_samples_received_total";
pub(crate) const SAMPLES_REJECTED_TOTAL: &str = "sightline_samples_rejected_total";
pub(crate) const INVALID_WRITE_REQUESTS_TOTAL: &str = "sightline_invalid_write_requests_total";
pub(crate) const EXEMPLARS_REJECTED_TOTAL: &str = "sightline_exemplars_rejected_total";
pub(crate) const WAL_FSYNC_SECONDS: &str = "sightline_wal_fsync_seconds";
pub(crate) const ACTIVE_SERIES: &str = "sightline_active_series";
pub(crate) const HEAD_CHUNKS: &str = "sightline_head_chunks";
pub(crate) const HEAD_SAMPLES: &str = "sightline_head_samples";
pub(crate) const HEAD_BYTES: &str = "sightline_head_bytes";
pub(crate) const BLOCKS: &str = "sightline_blocks";
pub(crate) const BLOCK_BYTES: &str = "sightline_block_bytes";
pub(crate) const WAL_BYTES: &str = "sightline_wal_bytes";
pub(crate) const TENANTS: &str = "sightline_tenants";
pub(crate) const HTTP_REQUEST_DURATION_SECONDS: &str = "sightline_http_request_duration_seconds";
pub(crate) const BUILD_INFO: &str = "sightline_build_info";
pub(crate) const PROCESS_START_TIME_SECONDS: &str = "sightline_process_start_time_seconds";
pub(crate) const QUERIES_IN_FLIGHT: &str = "sightline_queries_in_flight";
pub(crate) const QUERIES_QUEUED: &str = "sightline_queries_queued";
pub(crate) const SCRAPE_TARGETS: &str = "sightline_scrape_targets";
pub(crate) const BLOCK_CACHE_BYTES: &str = "sightline_block_cache_bytes";
pub(crate) const BLOCK_CACHE_LOOKUPS_TOTAL: &str = "sightline_block_cache_lookups_total";
pub(crate) const REMOTE_WRITE_SCRATCH_BYTES: &str = "sightline_remote_write_scratch_bytes";
pub(crate) const SCRAPES_TOTAL: &str = "sightline_scrapes_total";
pub(crate) const SCRAPE_FAILURES_TOTAL: &str = "sightline_scrape_failures_total";

/// Why samples were refused, besides the store's own reasons
/// (`sightline_tsdb::RejectReason::as_str`).
pub(crate) const REASON_RATE_LIMITED: &str = "rate_limited";
/// The request or series could not be decoded or was invalid.
pub(crate) const REASON_INVALID: &str = "invalid";
/// Data the metrics store cannot hold yet (native histograms, OTLP points that do
/// not translate).
pub(crate) const REASON_UNSUPPORTED: &str = "unsupported";

/// Upper bounds of the HTTP duration histogram, in seconds.
const HTTP_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Count per bucket (not cumulative); the last entry is +Inf.
    buckets: [u64; HTTP_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let index = HTTP_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(HTTP_BUCKETS.len());
        self.buckets[index] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// The registry: counters updated by handlers, gauges read from the stores at scrape.
#[derive(Debug)]
pub(crate) struct SelfMetrics {
    samples_received: AtomicU64,
    invalid_write_requests: AtomicU64,
    exemplars_rejected: AtomicU64,
    samples_rejected: Mutex<BTreeMap<String, u64>>,
    http_durations: Mutex<HashMap<(String, u16), Histogram>>,
    queries_in_flight: Arc<AtomicU64>,
    queries_queued: Arc<AtomicU64>,
    start_unix_seconds: f64,
    /// Counters of the scrape manager, once it runs.
    scrape_stats: Mutex<Option<Arc<sightline_scrape::ScrapeStats>>>,
}

/// One unit of a gauge held while something is under way; given back on drop, so a
/// query whose request is dropped mid-way still leaves the gauge right.
#[derive(Debug)]
pub(crate) struct GaugeGuard(Arc<AtomicU64>);

impl GaugeGuard {
    fn hold(gauge: &Arc<AtomicU64>) -> GaugeGuard {
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(Arc::clone(gauge))
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for SelfMetrics {
    fn default() -> SelfMetrics {
        let start_unix_seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        SelfMetrics {
            samples_received: AtomicU64::new(0),
            invalid_write_requests: AtomicU64::new(0),
            exemplars_rejected: AtomicU64::new(0),
            samples_rejected: Mutex::new(BTreeMap::new()),
            http_durations: Mutex::new(HashMap::new()),
            queries_in_flight: Arc::new(AtomicU64::new(0)),
            queries_queued: Arc::new(AtomicU64::new(0)),
            start_unix_seconds,
            scrape_stats: Mutex::new(None),
        }
    }
}

impl SelfMetrics {
    /// Samples that arrived in a decoded request, before limits and the store.
    pub(crate) fn add_samples_received(&self, count: u64) {
        self.samples_received.fetch_add(count, Ordering::Relaxed);
    }

    /// A write request refused whole because it could not be decoded or held an
    /// invalid series (its sample count is unknown).
    pub(crate) fn add_invalid_write_request(&self) {
        self.invalid_write_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Exemplars dropped while decoding (labels too long or not UTF-8); their samples
    /// were kept.
    pub(crate) fn add_exemplars_rejected(&self, count: u64) {
        self.exemplars_rejected.fetch_add(count, Ordering::Relaxed);
    }

    /// Samples refused for `reason`.
    pub(crate) fn add_samples_rejected(&self, reason: &str, count: u64) {
        if count == 0 {
            return;
        }
        let mut rejected = self.samples_rejected.lock();
        match rejected.get_mut(reason) {
            Some(total) => *total += count,
            None => {
                rejected.insert(reason.to_string(), count);
            }
        }
    }

    /// Counts a query as waiting for an evaluation slot until the guard is dropped.
    pub(crate) fn query_queued(&self) -> GaugeGuard {
        GaugeGuard::hold(&self.queries_queued)
    }

    /// Counts a query as being evaluated until the guard is dropped.
    pub(crate) fn query_in_flight(&self) -> GaugeGuard {
        GaugeGuard::hold(&self.queries_in_flight)
    }

    /// Start of the process, seconds since the epoch.
    pub(crate) fn start_unix_seconds(&self) -> f64 {
        self.start_unix_seconds
    }

    pub(crate) fn observe_http(&self, handler: &str, code: u16, elapsed: Duration) {
        let mut durations = self.http_durations.lock();
        let key = (handler.to_string(), code);
        durations
            .entry(key)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// The exposition text, with store figures summed over `dbs`.
    pub(crate) fn set_scrape_stats(&self, stats: Arc<sightline_scrape::ScrapeStats>) {
        *self.scrape_stats.lock() = Some(stats);
    }

    /// The scrape figures, when scraping runs.
    fn render_scrapes(&self, out: &mut String) {
        let Some(stats) = self.scrape_stats.lock().clone() else {
            return;
        };
        header(
            out,
            SCRAPE_TARGETS,
            "gauge",
            "Targets being scraped, by job.",
        );
        for (job, count) in stats.targets() {
            let _ = writeln!(
                out,
                "{SCRAPE_TARGETS}{{job=\"{}\"}} {count}",
                escape_label_value(&job)
            );
        }
        header(out, SCRAPES_TOTAL, "counter", "Scrapes done, all jobs.");
        let _ = writeln!(out, "{SCRAPES_TOTAL} {}", stats.scrapes_total());
        header(
            out,
            SCRAPE_FAILURES_TOTAL,
            "counter",
            "Scrapes that failed (up = 0): unreachable, bad status, unparsable body or over a limit.",
        );
        let _ = writeln!(
            out,
            "{SCRAPE_FAILURES_TOTAL} {}",
            stats.scrape_failures_total()
        );
    }

    pub(crate) fn render(&self, dbs: &[(TenantId, Arc<Db>)]) -> String {
        let mut out = String::with_capacity(4096);
        let stats: Vec<DbStats> = dbs.iter().map(|(_, db)| db.stats()).collect();
        let sum = |f: &dyn Fn(&DbStats) -> u64| stats.iter().map(f).sum::<u64>();

        header(
            &mut out,
            BUILD_INFO,
            "gauge",
            "Always 1; labels carry the build.",
        );
        let _ = writeln!(
            out,
            "{BUILD_INFO}{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        header(
            &mut out,
            PROCESS_START_TIME_SECONDS,
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
        );
        let _ = writeln!(
            out,
            "{PROCESS_START_TIME_SECONDS} {}",
            self.start_unix_seconds
        );

        header(
            &mut out,
            SAMPLES_RECEIVED_TOTAL,
            "counter",
            "Samples received in decoded write requests, before limits and storage.",
        );
        let _ = writeln!(
            out,
            "{SAMPLES_RECEIVED_TOTAL} {}",
            self.samples_received.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            SAMPLES_REJECTED_TOTAL,
            "counter",
            "Samples refused, by reason.",
        );
        for (reason, count) in self.samples_rejected.lock().iter() {
            let _ = writeln!(
                out,
                "{SAMPLES_REJECTED_TOTAL}{{reason=\"{}\"}} {count}",
                escape_label_value(reason)
            );
        }

        header(
            &mut out,
            INVALID_WRITE_REQUESTS_TOTAL,
            "counter",
            "Write requests refused whole: undecodable, or holding an invalid series.",
        );
        let _ = writeln!(
            out,
            "{INVALID_WRITE_REQUESTS_TOTAL} {}",
            self.invalid_write_requests.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            EXEMPLARS_REJECTED_TOTAL,
            "counter",
            "Exemplars dropped on ingest (labels over 128 characters or not UTF-8); their samples were kept.",
        );
        let _ = writeln!(
            out,
            "{EXEMPLARS_REJECTED_TOTAL} {}",
            self.exemplars_rejected.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            TENANTS,
            "gauge",
            "Tenants with an open metrics store.",
        );
        let _ = writeln!(out, "{TENANTS} {}", dbs.len());
        let gauges: [(&str, &str, u64); 9] = [
            (
                QUERIES_IN_FLIGHT,
                "PromQL queries being evaluated.",
                self.queries_in_flight.load(Ordering::Relaxed),
            ),
            (
                QUERIES_QUEUED,
                "PromQL queries waiting for an evaluation slot (query.max_concurrent).",
                self.queries_queued.load(Ordering::Relaxed),
            ),
            (
                ACTIVE_SERIES,
                "Series in the in-memory heads of all tenants.",
                sum(&|s| s.head_series),
            ),
            (
                HEAD_CHUNKS,
                "Chunks in the in-memory heads of all tenants.",
                sum(&|s| s.head_chunks),
            ),
            (
                HEAD_SAMPLES,
                "Samples in the in-memory heads of all tenants.",
                sum(&|s| s.head_samples),
            ),
            (
                HEAD_BYTES,
                "Estimated heap bytes of the in-memory heads of all tenants (series, index, chunks), as of the last maintenance run.",
                sum(&|s| s.head_bytes),
            ),
            (BLOCKS, "On-disk blocks of all tenants.", sum(&|s| s.blocks)),
            (
                BLOCK_BYTES,
                "Bytes of the on-disk blocks of all tenants.",
                sum(&|s| s.block_bytes),
            ),
            (
                WAL_BYTES,
                "Bytes of the write-ahead log segments of all tenants.",
                sum(&|s| s.wal_bytes),
            ),
        ];
        for (name, help, value) in gauges {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }

        header(
            &mut out,
            WAL_FSYNC_SECONDS,
            "summary",
            "Time spent in write-ahead log fsyncs.",
        );
        let fsync_seconds: f64 = stats.iter().map(|s| s.wal_fsync_seconds_total).sum();
        let _ = writeln!(out, "{WAL_FSYNC_SECONDS}_sum {fsync_seconds}");
        let _ = writeln!(
            out,
            "{WAL_FSYNC_SECONDS}_count {}",
            sum(&|s| s.wal_fsyncs_total)
        );

        header(
            &mut out,
            HTTP_REQUEST_DURATION_SECONDS,
            "histogram",
            "HTTP request latency by handler and status code.",
        );
        let durations = self.http_durations.lock();
        let mut keys: Vec<&(String, u16)> = durations.keys().collect();
        keys.sort();
        for key in keys {
            let Some(histogram) = durations.get(key) else {
                continue;
            };
            let (handler, code) = key;
            let handler = escape_label_value(handler);
            let mut cumulative = 0;
            for (index, bound) in HTTP_BUCKETS.iter().enumerate() {
                cumulative += histogram.buckets[index];
                let _ = writeln!(
                    out,
                    "{HTTP_REQUEST_DURATION_SECONDS}_bucket{{handler=\"{handler}\",code=\"{code}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{HTTP_REQUEST_DURATION_SECONDS}_bucket{{handler=\"{handler}\",code=\"{code}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "{HTTP_REQUEST_DURATION_SECONDS}_sum{{handler=\"{handler}\",code=\"{code}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "{HTTP_REQUEST_DURATION_SECONDS}_count{{handler=\"{handler}\",code=\"{code}\"}} {}",
                histogram.count
            );
        }
        self.render_scrapes(&mut out);
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes `\`, `"` and newlines as the text format requires.
fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The query block cache's figures (`storage.metrics.block_cache_bytes`).
fn render_block_cache(out: &mut String, cache: &sightline_tsdb::GroupCache) {
    header(
        out,
        BLOCK_CACHE_BYTES,
        "gauge",
        "Bytes of decompressed block data kept for queries (storage.metrics.block_cache_bytes).",
    );
    let _ = writeln!(out, "{BLOCK_CACHE_BYTES} {}", cache.bytes());
    header(
        out,
        BLOCK_CACHE_LOOKUPS_TOTAL,
        "counter",
        "Lookups of block data by queries in the block cache, by result.",
    );
    let (hits, misses) = cache.hits_and_misses();
    let _ = writeln!(out, "{BLOCK_CACHE_LOOKUPS_TOTAL}{{result=\"hit\"}} {hits}");
    let _ = writeln!(
        out,
        "{BLOCK_CACHE_LOOKUPS_TOTAL}{{result=\"miss\"}} {misses}"
    );
}

fn render_remote_write_scratch(
    out: &mut String,
    pool: &sightline_ingest::remote_write::ScratchPool,
) {
    header(
        out,
        REMOTE_WRITE_SCRATCH_BYTES,
        "gauge",
        "Bytes of remote_write decoding buffers kept between requests.",
    );
    let _ = writeln!(out, "{REMOTE_WRITE_SCRATCH_BYTES} {}", pool.pooled_bytes());
}

/// `GET /metrics`.
pub(crate) async fn metrics_handler(State(state): State<AppState>) -> Response {
    let render_state = state.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let dbs = render_state.all_metrics_dbs();
        let mut text = render_state.self_metrics().render(&dbs);
        render_block_cache(&mut text, render_state.group_cache());
        render_remote_write_scratch(&mut text, render_state.remote_write_scratch());
        text
    })
    .await;
    match rendered {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("rendering metrics failed: {e}")).into_text_response(),
    }
}

/// Middleware (a route layer, so the matched route is known): times every request,
/// counts it by handler and status code, logs it at debug.
pub(crate) async fn track_http(
    State(state): State<AppState>,
    matched_path: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let handler = matched_path
        .as_ref()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".to_string());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let code = response.status().as_u16();
    state.self_metrics().observe_http(&handler, code, elapsed);
    tracing::debug!(
        method = %method,
        handler = %handler,
        code,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "http request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let metrics = SelfMetrics::default();
        metrics.add_samples_received(10);
        metrics.add_samples_rejected("out_of_order", 2);
        metrics.add_samples_rejected("out_of_order", 1);
        metrics.add_samples_rejected(REASON_RATE_LIMITED, 0);
        metrics.observe_http("/api/v1/write", 204, Duration::from_millis(3));
        metrics.observe_http("/api/v1/write", 204, Duration::from_secs(20));
        let text = metrics.render(&[]);
        assert!(
            text.contains("sightline_samples_received_total 10\n"),
            "{text}"
        );
        assert!(text.contains("sightline_samples_rejected_total{reason=\"out_of_order\"} 3\n"));
        assert!(!text.contains("rate_limited"));
        assert!(text.contains(
            "sightline_http_request_duration_seconds_bucket{handler=\"/api/v1/write\",code=\"204\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "sightline_http_request_duration_seconds_bucket{handler=\"/api/v1/write\",code=\"204\",le=\"+Inf\"} 2\n"
        ));
        assert!(text.contains(
            "sightline_http_request_duration_seconds_count{handler=\"/api/v1/write\",code=\"204\"} 2\n"
        ));
        assert!(text.contains("sightline_wal_fsync_seconds_count 0\n"));
        assert!(text.contains("sightline_active_series 0\n"));
        let queued = metrics.query_queued();
        assert!(metrics.render(&[]).contains("sightline_queries_queued 1\n"));
        drop(queued);
        assert!(metrics.render(&[]).contains("sightline_queries_queued 0\n"));
        assert!(text.contains("sightline_build_info{version="));
        let cache = sightline_tsdb::GroupCache::new(1 << 20);
        let mut text = String::new();
        render_block_cache(&mut text, &cache);
        assert!(text.contains("sightline_block_cache_bytes 0\n"), "{text}");
        assert!(text.contains("sightline_block_cache_lookups_total{result=\"miss\"} 0\n"));
        assert!(text.contains("# TYPE sightline_block_cache_lookups_total counter\n"));
        render_remote_write_scratch(
            &mut text,
            &sightline_ingest::remote_write::ScratchPool::new(1, 1),
        );
        assert!(
            text.contains("sightline_remote_write_scratch_bytes 0\n"),
            "{text}"
        );
        // Every sample line belongs to a declared family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "no TYPE for {name}"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
