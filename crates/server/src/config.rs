//! The server's configuration: one typed tree, read from YAML, every field documented
//! and defaulted in code. `config/sightline.example.yaml` lists every option with its
//! default; a test below fails when the two drift apart.
//!
//! Precedence (lowest first): these defaults, the YAML file, `SIGHTLINE_*` environment
//! variables, command-line flags. The last two are applied by [`crate::cli`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// Directory holding every tenant's data (`<data_dir>/<tenant>/metrics/`) and the
    /// `LOCK` file that keeps a second server out.
    pub(crate) data_dir: PathBuf,
    /// Listeners, logging and request limits.
    pub(crate) server: ServerConfig,
    /// Write-ahead log and metrics store settings.
    pub(crate) storage: StorageConfig,
    /// Per-tenant limits.
    pub(crate) limits: LimitsConfig,
    /// PromQL query limits and defaults (`/api/v1/query`, `/api/v1/query_range`).
    pub(crate) query: QueryConfig,
    /// Scrape jobs in Prometheus' `scrape_configs` shape (paste them from a
    /// `prometheus.yml`): `job_name`, `scrape_interval` (default 1m), `scrape_timeout`
    /// (10s), `metrics_path` (/metrics), `scheme` (http or https), `tls_config`, `params`, `basic_auth`,
    /// `authorization`/`bearer_token`/`bearer_token_file`, `honor_labels`,
    /// `honor_timestamps`, `sample_limit`, `body_size_limit`, `static_configs`,
    /// `file_sd_configs`, `relabel_configs` and `metric_relabel_configs`. Sightline adds
    /// `tenant` (default `default`): the tenant a job's samples are written to.
    pub(crate) scrape_configs: Vec<sightline_scrape::ScrapeConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            query: QueryConfig::default(),
            scrape_configs: Vec::new(),
        }
    }
}

/// Listeners, logging and request limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ServerConfig {
    /// Address of the HTTP API and UI (Prometheus API, remote_write, OTLP/HTTP, /metrics).
    /// Loopback by default so a fresh install is not reachable from the network; use
    /// `0.0.0.0:9700` to listen on every interface.
    pub(crate) listen: SocketAddr,
    /// Address of the OTLP/gRPC receiver (loopback by default).
    pub(crate) otlp_grpc_listen: SocketAddr,
    /// Address of the dedicated OTLP/HTTP receiver (loopback by default). `/v1/metrics`
    /// is also served on `listen`.
    pub(crate) otlp_http_listen: SocketAddr,
    /// Log line format: `text` (human) or `json` (one object per line).
    pub(crate) log_format: LogFormat,
    /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or a
    /// `tracing` directive such as `info,sightline_tsdb=debug`.
    pub(crate) log_level: String,
    /// Largest request body accepted on ingest, as sent (compressed), in bytes.
    pub(crate) max_request_body_bytes: ByteSize,
    /// Largest ingest body after decompression, in bytes; also the largest gRPC message.
    pub(crate) max_decompressed_body_bytes: ByteSize,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT before the
    /// stores are closed anyway.
    pub(crate) shutdown_timeout: ConfigDuration,
    /// Bytes of decompressed ingest bodies being decoded at once, across all requests
    /// and tenants. A request waits (never fails) until its share is free, so memory
    /// stays bounded under bursts of large writes. Must be at least
    /// `max_decompressed_body_bytes`.
    pub(crate) max_inflight_decompressed_bytes: ByteSize,
    /// Serve the admin API (`POST /api/sightline/v1/admin/flush`) on `listen`. Off by
    /// default, like Prometheus' `--web.enable-admin-api`: it has no authentication.
    pub(crate) enable_admin_api: bool,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9700)),
            otlp_grpc_listen: SocketAddr::from(([127, 0, 0, 1], 4317)),
            otlp_http_listen: SocketAddr::from(([127, 0, 0, 1], 4318)),
            log_format: LogFormat::Text,
            log_level: "info".to_string(),
            max_request_body_bytes: ByteSize(16 << 20),
            max_decompressed_body_bytes: ByteSize(64 << 20),
            shutdown_timeout: ConfigDuration::from_secs(30),
            max_inflight_decompressed_bytes: ByteSize(256 << 20),
            enable_admin_api: false,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Write-ahead log and metrics store settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct StorageConfig {
    /// The write-ahead log every store writes before acknowledging a write.
    pub(crate) wal: WalConfig,
    /// The metrics store (one per tenant).
    pub(crate) metrics: MetricsStorageConfig,
}

/// Write-ahead log settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct WalConfig {
    /// When writes are made durable: `always` (a write is acknowledged after an fsync
    /// that started after it; concurrent writes share one), `batch` (the same group
    /// commit, with the optional gathering window `fsync_max_delay`) or `none` (never
    /// fsync: survives a process crash, not a power loss).
    pub(crate) fsync: FsyncMode,
    /// With `fsync: batch`, how long an fsync may wait after the oldest write not yet
    /// synced, to cover more writes at once. `0s`: it starts as soon as a write needs
    /// one and no other fsync is running (writes made while one runs share the next).
    pub(crate) fsync_max_delay: ConfigDuration,
    /// A WAL segment file is closed and a new one started at this size, in bytes.
    pub(crate) segment_size_bytes: ByteSize,
}

impl Default for WalConfig {
    fn default() -> WalConfig {
        WalConfig {
            fsync: FsyncMode::Batch,
            fsync_max_delay: ConfigDuration(Duration::ZERO),
            segment_size_bytes: ByteSize(128 << 20),
        }
    }
}

/// WAL fsync policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FsyncMode {
    Always,
    Batch,
    None,
}

/// Metrics store settings (one store per tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MetricsStorageConfig {
    /// Time span of one on-disk block; the in-memory head is cut into blocks aligned
    /// to it.
    pub(crate) block_range: ConfigDuration,
    /// Samples older than their series' newest sample by at most this are accepted.
    pub(crate) out_of_order_window: ConfigDuration,
    /// Samples later than now plus this are rejected (`too_far_in_future`).
    pub(crate) future_tolerance: ConfigDuration,
    /// Blocks older than this are deleted. `0s` keeps data forever.
    pub(crate) retention_time: ConfigDuration,
    /// When the blocks of one tenant exceed this many bytes the oldest are deleted.
    /// `0` means no size limit.
    pub(crate) retention_bytes: ByteSize,
    /// Exemplars kept in memory per tenant (a ring, like Prometheus).
    pub(crate) max_exemplars: usize,
    /// Memory for block data that queries decompressed, shared by all tenants: a
    /// dashboard asking again for the same window reads it without decompressing.
    /// `0` disables the cache.
    pub(crate) block_cache_bytes: ByteSize,
    /// How often each store runs its housekeeping (cut blocks, compact, retention,
    /// WAL truncation).
    pub(crate) maintenance_interval: ConfigDuration,
}

impl Default for MetricsStorageConfig {
    fn default() -> MetricsStorageConfig {
        MetricsStorageConfig {
            block_range: ConfigDuration::from_secs(2 * 3600),
            out_of_order_window: ConfigDuration::from_secs(10 * 60),
            future_tolerance: ConfigDuration::from_secs(10 * 60),
            retention_time: ConfigDuration::from_secs(15 * 86_400),
            retention_bytes: ByteSize(0),
            max_exemplars: 100_000,
            block_cache_bytes: ByteSize(sightline_tsdb::DEFAULT_GROUP_CACHE_BYTES as u64),
            maintenance_interval: ConfigDuration::from_secs(30),
        }
    }
}

/// Limits applied to each tenant separately.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct LimitsConfig {
    /// Sustained samples per second a tenant may write (token bucket refill rate).
    /// Requests past it get 429.
    pub(crate) ingestion_rate_samples_per_second: u64,
    /// Samples a tenant may write in a burst (token bucket size). A single request
    /// with more samples than this is always refused.
    pub(crate) ingestion_burst_samples: u64,
    /// Series a tenant may have in memory; samples of new series past it are refused.
    /// `0` means no limit.
    pub(crate) max_series_per_tenant: usize,
    /// Largest number of labels (including `__name__`) on one series.
    pub(crate) max_label_names_per_series: usize,
    /// Longest label name, in bytes.
    pub(crate) max_label_name_bytes: usize,
    /// Longest label value, in bytes.
    pub(crate) max_label_value_bytes: usize,
    /// Most tenants (distinct `X-Scope-OrgID`s) this server keeps; each has its own
    /// store, WAL and thread. A write for a new tenant past it gets 429.
    pub(crate) max_tenants: usize,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            ingestion_rate_samples_per_second: 1_000_000,
            ingestion_burst_samples: 2_000_000,
            max_series_per_tenant: 5_000_000,
            max_label_names_per_series: 40,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 4096,
            max_tenants: 1000,
        }
    }
}

/// PromQL query limits and defaults. Every limit fails the query with an error naming
/// it and its value (422 `execution`, 503 `timeout`), never by running out of memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct QueryConfig {
    /// Longest a query may take, time waiting in the queue included (Prometheus'
    /// `--query.timeout`). A request's `timeout` parameter can lower it, never raise it.
    pub(crate) timeout: ConfigDuration,
    /// Most samples a query may hold in memory at once, loaded and computed
    /// (Prometheus' `--query.max-samples`).
    pub(crate) max_samples: usize,
    /// How far back an instant selector looks for a sample (Prometheus'
    /// `--query.lookback-delta`); a request's `lookback_delta` parameter overrides it.
    pub(crate) lookback_delta: ConfigDuration,
    /// Most points per series a range query may return: `(end - start) / step` above
    /// it is refused (Prometheus' fixed 11,000).
    pub(crate) max_points_per_series: usize,
    /// Most series one query may select, all its selectors together; checked before
    /// their samples are read.
    pub(crate) max_series: usize,
    /// Queries evaluated at once (Prometheus' `--query.max-concurrency`). Others wait
    /// in a queue; the wait counts against their timeout.
    pub(crate) max_concurrent: usize,
}

impl Default for QueryConfig {
    fn default() -> QueryConfig {
        QueryConfig {
            timeout: ConfigDuration::from_secs(120),
            max_samples: 50_000_000,
            lookback_delta: ConfigDuration::from_secs(300),
            max_points_per_series: 11_000,
            max_series: 500_000,
            max_concurrent: 20,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: invalid settings:\n{}", problems.join("\n"))]
    Invalid { path: String, problems: Vec<String> },
}

impl Config {
    /// Reads, parses and validates a YAML config file.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates YAML text; `origin` names the text in error messages. An
    /// empty document is the default configuration.
    pub(crate) fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let is_empty = text
            .lines()
            .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'));
        let config = if is_empty {
            Config::default()
        } else {
            serde_saphyr::from_str::<Config>(text).map_err(|e| ConfigError::Parse {
                path: origin.to_string(),
                message: e.to_string(),
            })?
        };
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: origin.to_string(),
                problems,
            });
        }
        Ok(config)
    }

    /// Settings that parse but make no sense, each naming its option.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, message: &str| {
            if !ok {
                problems.push(format!("  - {message}"));
            }
        };
        let server = &self.server;
        let metrics = &self.storage.metrics;
        let limits = &self.limits;
        let query = &self.query;
        check(
            !self.data_dir.as_os_str().is_empty(),
            "data_dir must not be empty",
        );
        check(
            tracing_subscriber::EnvFilter::try_new(&server.log_level).is_ok(),
            &format!(
                "server.log_level {:?} is not a level or tracing directive",
                server.log_level
            ),
        );
        check(
            server.max_request_body_bytes.0 > 0,
            "server.max_request_body_bytes must be above 0",
        );
        check(
            server.max_decompressed_body_bytes.0 >= server.max_request_body_bytes.0,
            "server.max_decompressed_body_bytes must be at least server.max_request_body_bytes",
        );
        check(
            server.max_decompressed_body_bytes.0 <= u64::from(u32::MAX),
            "server.max_decompressed_body_bytes must be at most 4GiB",
        );
        check(
            server.max_inflight_decompressed_bytes.0 >= server.max_decompressed_body_bytes.0,
            "server.max_inflight_decompressed_bytes must be at least \
             server.max_decompressed_body_bytes",
        );
        check(limits.max_tenants > 0, "limits.max_tenants must be above 0");
        check(
            self.storage.wal.segment_size_bytes.0 >= 1 << 20,
            "storage.wal.segment_size_bytes must be at least 1MiB",
        );
        check(
            metrics.block_range.0 >= Duration::from_secs(60),
            "storage.metrics.block_range must be at least 1m",
        );
        check(
            metrics.maintenance_interval.0 >= Duration::from_secs(1),
            "storage.metrics.maintenance_interval must be at least 1s",
        );
        check(
            limits.ingestion_rate_samples_per_second > 0,
            "limits.ingestion_rate_samples_per_second must be above 0",
        );
        check(
            limits.ingestion_burst_samples >= limits.ingestion_rate_samples_per_second,
            "limits.ingestion_burst_samples must be at least limits.ingestion_rate_samples_per_second",
        );
        check(
            limits.max_label_names_per_series > 0,
            "limits.max_label_names_per_series must be above 0",
        );
        check(
            limits.max_label_name_bytes > 0 && limits.max_label_value_bytes > 0,
            "limits.max_label_name_bytes and limits.max_label_value_bytes must be above 0",
        );
        check(
            query.timeout.0 > Duration::ZERO,
            "query.timeout must be above 0s",
        );
        check(
            query.lookback_delta.0 >= Duration::from_millis(1),
            "query.lookback_delta must be at least 1ms",
        );
        for (value, name) in [
            (query.max_samples, "query.max_samples"),
            (query.max_points_per_series, "query.max_points_per_series"),
            (query.max_series, "query.max_series"),
            (query.max_concurrent, "query.max_concurrent"),
        ] {
            check(value > 0, &format!("{name} must be above 0"));
        }
        problems.extend(scrape_problems(&self.scrape_configs));
        problems
    }

    /// The metrics store options these settings describe.
    /// The metrics store's options; `group_cache` is shared by every tenant's store.
    pub(crate) fn db_options(
        &self,
        group_cache: Arc<sightline_tsdb::GroupCache>,
    ) -> sightline_tsdb::DbOptions {
        let metrics = &self.storage.metrics;
        let wal = &self.storage.wal;
        let fsync = match wal.fsync {
            FsyncMode::Always => sightline_wal::FsyncPolicy::Always,
            FsyncMode::Batch => sightline_wal::FsyncPolicy::Batch {
                max_delay: wal.fsync_max_delay.0,
            },
            FsyncMode::None => sightline_wal::FsyncPolicy::None,
        };
        sightline_tsdb::DbOptions {
            block_range: metrics.block_range.0,
            out_of_order_window: metrics.out_of_order_window.0,
            retention_time: metrics.retention_time.0,
            retention_bytes: metrics.retention_bytes.0,
            max_series: self.limits.max_series_per_tenant,
            future_tolerance: metrics.future_tolerance.0,
            max_exemplars: metrics.max_exemplars,
            wal: sightline_wal::WalOptions {
                segment_size_bytes: wal.segment_size_bytes.0,
                fsync,
            },
            group_cache,
        }
    }
}

/// Scrape jobs that parse but cannot run: a repeated `job_name`, a tenant id that is
/// not valid or reserved.
fn scrape_problems(jobs: &[sightline_scrape::ScrapeConfig]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for job in jobs {
        if !seen.insert(job.job_name.as_str()) {
            problems.push(format!(
                "  - scrape_configs: job_name {:?} is used more than once",
                job.job_name
            ));
        }
        let reason = match sightline_model::TenantId::parse(&job.tenant) {
            Ok(tenant) => crate::tenant::reserved_reason(&tenant).map(str::to_string),
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = reason {
            problems.push(format!(
                "  - scrape_configs: job {:?} has an invalid tenant {:?}: {reason}",
                job.job_name, job.tenant
            ));
        }
    }
    problems
}

/// A duration written as a string of number+unit parts: `10ms`, `30s`, `10m`, `2h`,
/// `15d`, `1w`, `1y`, `1h30m`; `0` alone means zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ConfigDuration(pub(crate) Duration);

impl ConfigDuration {
    pub(crate) const fn from_secs(secs: u64) -> ConfigDuration {
        ConfigDuration(Duration::from_secs(secs))
    }
}

/// Parses a duration like `30s`, `15d`, `1h30m` or `10ms` (Prometheus' units: ms, s, m,
/// h, d, w, y).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    sightline_model::time::parse_duration(text)
}

/// Formats a duration the way [`parse_duration`] reads it, largest units first.
pub(crate) fn format_duration(duration: Duration) -> String {
    sightline_model::time::format_duration(duration)
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl std::str::FromStr for ConfigDuration {
    type Err = String;
    fn from_str(text: &str) -> Result<ConfigDuration, String> {
        parse_duration(text).map(ConfigDuration)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like 30s, 10m, 2h or 15d")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ConfigDuration, E> {
                parse_duration(text).map(ConfigDuration).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<ConfigDuration, E> {
                if value == 0 {
                    return Ok(ConfigDuration(Duration::ZERO));
                }
                Err(E::custom(format!(
                    "{value} has no unit; write a duration like {value}s or {value}m"
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<ConfigDuration, E> {
                match u64::try_from(value) {
                    Ok(value) => self.visit_u64(value),
                    Err(_) => Err(E::custom("a duration cannot be negative")),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A size in bytes: an integer, or a string with a unit (`512KiB`, `64MiB`, `1GiB`,
/// `10MB`; binary units are powers of 1024, decimal ones of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ByteSize(pub(crate) u64);

/// Parses a byte size like `1048576`, `64MiB` or `10MB`.
pub(crate) fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a size like 1048576, 64MiB or 1GB");
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(text.len());
    if digits_end == 0 {
        return Err(bad());
    }
    let number: u64 = text[..digits_end]
        .replace('_', "")
        .parse()
        .map_err(|_| bad())?;
    let multiplier: u64 = match text[digits_end..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    number.checked_mul(multiplier).ok_or_else(bad)
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes, like 1048576 or 64MiB")
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(value))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<ByteSize, E> {
                u64::try_from(value)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ByteSize, E> {
                parse_byte_size(text).map(ByteSize).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests;
