//! `scrape_configs` in Prometheus' YAML shape (the subset Sightline supports), so jobs
//! can be pasted from a `prometheus.yml`. Defaults are Prometheus' global defaults:
//! `scrape_interval: 1m`, `scrape_timeout: 10s`, `metrics_path: /metrics`,
//! `scheme: http`, `honor_labels: false`, `honor_timestamps: true`.
//!
//! A job is checked while it is read, so configuration errors carry the YAML line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sightline_pipeline::RelabelConfig;

/// Prometheus' default `scrape_interval`.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
/// Prometheus' default `scrape_timeout`.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Prometheus' default `file_sd_configs[].refresh_interval`.
pub const DEFAULT_FILE_SD_REFRESH: Duration = Duration::from_secs(300);
/// The tenant a job writes to when it names none.
pub const DEFAULT_TENANT: &str = "default";

/// One scrape job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawScrapeConfig", into = "RawScrapeConfig")]
pub struct ScrapeConfig {
    pub job_name: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub metrics_path: String,
    pub scheme: Scheme,
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    /// Samples one scrape may have after `metric_relabel_configs`; 0 = no limit.
    pub sample_limit: usize,
    /// Largest body (decompressed) of one scrape, in bytes; 0 = no limit of the job's
    /// own (the scraper still refuses bodies past [`crate::MAX_BODY_BYTES`]).
    pub body_size_limit: u64,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub relabel_configs: Vec<RelabelConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Sightline's extension: the tenant this job's samples are written to.
    pub tenant: String,
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// `basic_auth`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<secret>"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// `authorization` (and the older `bearer_token`/`bearer_token_file`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme of the `Authorization` header; `Bearer` by default.
    #[serde(default = "default_authorization_type", rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
}

fn default_authorization_type() -> String {
    "Bearer".to_string()
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("type", &self.kind)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<secret>"),
            )
            .field("credentials_file", &self.credentials_file)
            .finish()
    }
}

/// `static_configs[]`: fixed targets with common labels (the same shape as a file SD
/// group, as in Prometheus).
pub type StaticConfig = crate::discovery::TargetGroup;

/// `file_sd_configs[]`: target groups read from JSON or YAML files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Paths; the last element may be a glob such as `targets/*.json`.
    pub files: Vec<String>,
    /// How often the files are re-read even when they look unchanged.
    #[serde(default = "default_refresh", with = "duration_text")]
    pub refresh_interval: Duration,
}

fn default_refresh() -> Duration {
    DEFAULT_FILE_SD_REFRESH
}

/// The YAML shape with every optional field optional.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrapeConfig {
    job_name: String,
    #[serde(
        default,
        with = "optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    scrape_interval: Option<Duration>,
    #[serde(
        default,
        with = "optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    scrape_timeout: Option<Duration>,
    #[serde(default = "default_metrics_path")]
    metrics_path: String,
    #[serde(default)]
    scheme: Scheme,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    honor_labels: bool,
    #[serde(default = "default_true")]
    honor_timestamps: bool,
    #[serde(default)]
    sample_limit: usize,
    #[serde(default, with = "size_text")]
    body_size_limit: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    basic_auth: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization: Option<Authorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bearer_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bearer_token_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    static_configs: Vec<StaticConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    file_sd_configs: Vec<FileSdConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    relabel_configs: Vec<RelabelConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    metric_relabel_configs: Vec<RelabelConfig>,
    #[serde(default = "default_tenant")]
    tenant: String,
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

fn default_true() -> bool {
    true
}

fn default_tenant() -> String {
    DEFAULT_TENANT.to_string()
}

impl TryFrom<RawScrapeConfig> for ScrapeConfig {
    type Error = String;

    fn try_from(raw: RawScrapeConfig) -> Result<ScrapeConfig, String> {
        let job = &raw.job_name;
        if job.is_empty() {
            return Err("job_name is empty".to_string());
        }
        let scrape_interval = raw.scrape_interval.unwrap_or(DEFAULT_SCRAPE_INTERVAL);
        if scrape_interval.is_zero() {
            return Err(format!("job {job:?}: scrape_interval must be above 0"));
        }
        // As Prometheus: an unset timeout is the default, capped at the interval.
        let scrape_timeout = match raw.scrape_timeout {
            Some(timeout) => timeout,
            None => DEFAULT_SCRAPE_TIMEOUT.min(scrape_interval),
        };
        if scrape_timeout.is_zero() {
            return Err(format!("job {job:?}: scrape_timeout must be above 0"));
        }
        if scrape_timeout > scrape_interval {
            return Err(format!(
                "job {job:?}: scrape timeout greater than scrape interval \
                 ({} > {})",
                sightline_model::time::format_duration(scrape_timeout),
                sightline_model::time::format_duration(scrape_interval)
            ));
        }
        if !raw.metrics_path.starts_with('/') {
            return Err(format!(
                "job {job:?}: metrics_path {:?} must start with '/'",
                raw.metrics_path
            ));
        }
        if raw.scheme == Scheme::Https {
            return Err(format!(
                "job {job:?}: scheme https is not supported yet (this build has no TLS \
                 client); scrape over http"
            ));
        }
        let authorization = merge_authorization(job, &raw)?;
        if raw.basic_auth.is_some() && authorization.is_some() {
            return Err(format!(
                "job {job:?}: at most one of basic_auth, authorization, bearer_token and \
                 bearer_token_file must be configured"
            ));
        }
        if let Some(basic) = &raw.basic_auth
            && basic.password.is_some()
            && basic.password_file.is_some()
        {
            return Err(format!(
                "job {job:?}: at most one of basic_auth password and password_file must be configured"
            ));
        }
        for group in &raw.static_configs {
            for name in group.labels.keys() {
                if !sightline_pipeline::relabel::is_valid_label_name(name) {
                    return Err(format!("job {job:?}: {name:?} is not a valid label name"));
                }
            }
        }
        for file_sd in &raw.file_sd_configs {
            for pattern in &file_sd.files {
                crate::discovery::check_file_pattern(pattern)
                    .map_err(|e| format!("job {job:?}: {e}"))?;
            }
        }
        if let Err(e) = sightline_model::TenantId::parse(&raw.tenant) {
            return Err(format!("job {job:?}: {e}"));
        }
        Ok(ScrapeConfig {
            job_name: raw.job_name,
            scrape_interval,
            scrape_timeout,
            metrics_path: raw.metrics_path,
            scheme: raw.scheme,
            params: raw.params,
            honor_labels: raw.honor_labels,
            honor_timestamps: raw.honor_timestamps,
            sample_limit: raw.sample_limit,
            body_size_limit: raw.body_size_limit,
            basic_auth: raw.basic_auth,
            authorization,
            static_configs: raw.static_configs,
            file_sd_configs: raw.file_sd_configs,
            relabel_configs: raw.relabel_configs,
            metric_relabel_configs: raw.metric_relabel_configs,
            tenant: raw.tenant,
        })
    }
}

/// `bearer_token`/`bearer_token_file` are `authorization` with type `Bearer`.
fn merge_authorization(job: &str, raw: &RawScrapeConfig) -> Result<Option<Authorization>, String> {
    let legacy = match (&raw.bearer_token, &raw.bearer_token_file) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "job {job:?}: at most one of bearer_token and bearer_token_file must be configured"
            ));
        }
        (Some(token), None) => Some(Authorization {
            kind: default_authorization_type(),
            credentials: Some(token.clone()),
            credentials_file: None,
        }),
        (None, Some(file)) => Some(Authorization {
            kind: default_authorization_type(),
            credentials: None,
            credentials_file: Some(file.clone()),
        }),
        (None, None) => None,
    };
    match (&raw.authorization, legacy) {
        (Some(_), Some(_)) => Err(format!(
            "job {job:?}: at most one of authorization, bearer_token and bearer_token_file \
             must be configured"
        )),
        (Some(authorization), None) => {
            if authorization.credentials.is_some() && authorization.credentials_file.is_some() {
                return Err(format!(
                    "job {job:?}: at most one of authorization credentials and \
                     credentials_file must be configured"
                ));
            }
            if authorization.kind.eq_ignore_ascii_case("basic") {
                return Err(format!(
                    "job {job:?}: authorization type cannot be set to \"basic\", use \
                     \"basic_auth\" instead"
                ));
            }
            Ok(Some(authorization.clone()))
        }
        (None, legacy) => Ok(legacy),
    }
}

impl From<ScrapeConfig> for RawScrapeConfig {
    fn from(config: ScrapeConfig) -> RawScrapeConfig {
        RawScrapeConfig {
            job_name: config.job_name,
            scrape_interval: Some(config.scrape_interval),
            scrape_timeout: Some(config.scrape_timeout),
            metrics_path: config.metrics_path,
            scheme: config.scheme,
            params: config.params,
            honor_labels: config.honor_labels,
            honor_timestamps: config.honor_timestamps,
            sample_limit: config.sample_limit,
            body_size_limit: config.body_size_limit,
            basic_auth: config.basic_auth,
            authorization: config.authorization,
            bearer_token: None,
            bearer_token_file: None,
            static_configs: config.static_configs,
            file_sd_configs: config.file_sd_configs,
            relabel_configs: config.relabel_configs,
            metric_relabel_configs: config.metric_relabel_configs,
            tenant: config.tenant,
        }
    }
}

/// Durations as Prometheus writes them (`15s`, `1m`, `1h30m`).
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&sightline_model::time::format_duration(*value))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        sightline_model::time::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

mod optional_duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => super::duration_text::serialize(duration, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|text| sightline_model::time::parse_duration(&text))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

/// Sizes as Prometheus' `body_size_limit` takes them: bytes, or `KB`, `MB`, `GB`
/// (powers of 1024, as Prometheus' units) and `KiB`, `MiB`, `GiB`.
mod size_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*value)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Size::deserialize(d)? {
            Size::Number(bytes) => Ok(bytes),
            Size::Text(text) => parse_size(&text).map_err(serde::de::Error::custom),
        }
    }

    pub(super) fn parse_size(text: &str) -> Result<u64, String> {
        let text = text.trim();
        let bad = || format!("{text:?} is not a size like 10MB or 1048576");
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let number: u64 = text[..digits].parse().map_err(|_| bad())?;
        let multiplier: u64 = match &text[digits..] {
            "" | "B" => 1,
            "KB" | "KiB" => 1 << 10,
            "MB" | "MiB" => 1 << 20,
            "GB" | "GiB" => 1 << 30,
            _ => return Err(bad()),
        };
        number.checked_mul(multiplier).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(yaml: &str) -> Result<Vec<ScrapeConfig>, String> {
        serde_saphyr::from_str::<Vec<ScrapeConfig>>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn prometheus_defaults() {
        let parsed =
            jobs("- job_name: node\n  static_configs: [{targets: ['localhost:9100']}]\n").unwrap();
        let job = &parsed[0];
        assert_eq!(job.scrape_interval, Duration::from_secs(60));
        assert_eq!(job.scrape_timeout, Duration::from_secs(10));
        assert_eq!(job.metrics_path, "/metrics");
        assert_eq!(job.scheme, Scheme::Http);
        assert!(!job.honor_labels);
        assert!(job.honor_timestamps);
        assert_eq!(job.tenant, "default");
        // An unset timeout is capped at a short interval.
        let parsed = jobs("- {job_name: a, scrape_interval: 5s}").unwrap();
        assert_eq!(parsed[0].scrape_timeout, Duration::from_secs(5));
    }

    #[test]
    fn a_full_prometheus_job_parses() {
        let yaml = r#"
- job_name: node
  scrape_interval: 15s
  scrape_timeout: 5s
  metrics_path: /probe
  params: {module: [http_2xx]}
  honor_labels: true
  honor_timestamps: false
  sample_limit: 1000
  body_size_limit: 10MB
  bearer_token: tok-123
  static_configs:
    - targets: ['a:9100', 'b:9100']
      labels: {env: prod}
  file_sd_configs:
    - files: ['/etc/prometheus/targets/*.json']
      refresh_interval: 1m
  relabel_configs:
    - {source_labels: [__address__], target_label: __param_target}
  metric_relabel_configs:
    - {source_labels: [__name__], regex: 'go_.*', action: drop}
  tenant: team-a
"#;
        let job = &jobs(yaml).unwrap()[0];
        assert_eq!(job.scrape_interval, Duration::from_secs(15));
        assert_eq!(job.body_size_limit, 10 << 20);
        assert_eq!(
            job.authorization
                .as_ref()
                .and_then(|a| a.credentials.clone()),
            Some("tok-123".to_string())
        );
        assert_eq!(job.static_configs[0].targets.len(), 2);
        assert_eq!(
            job.file_sd_configs[0].refresh_interval,
            Duration::from_secs(60)
        );
        assert_eq!(job.tenant, "team-a");
        assert!(
            !format!("{job:?}").contains("tok-123"),
            "secrets stay out of logs"
        );
        let text = serde_saphyr::to_string(&vec![job.clone()]).unwrap();
        assert_eq!(&jobs(&text).unwrap()[0], job);
    }

    #[test]
    fn errors_are_prometheus_like_and_located() {
        let cases = [
            (
                "- {job_name: a, scrape_interval: 5s, scrape_timeout: 10s}",
                "scrape timeout greater than scrape interval",
            ),
            (
                "- {job_name: a, scrape_interval: 5 seconds}",
                "is not a duration",
            ),
            (
                "- {job_name: a, bearer_token: x, bearer_token_file: /y}",
                "at most one of bearer_token",
            ),
            (
                "- {job_name: a, bearer_token: x, basic_auth: {username: u}}",
                "at most one of basic_auth",
            ),
            ("- {job_name: a, scheme: ftp}", "ftp"),
            (
                "- {job_name: a, metrics_path: metrics}",
                "must start with '/'",
            ),
            (
                "- {job_name: a, relabel_configs: [{action: replace}]}",
                "requires 'target_label' value",
            ),
            ("- {job_name: a, scrape_intervall: 5s}", "scrape_intervall"),
            (
                "- {job_name: a, tenant: 'a/b'}",
                "tenant id \"a/b\" is not valid",
            ),
            (
                "- {job_name: a, static_configs: [{targets: [x], labels: {'a-b': c}}]}",
                "not a valid label name",
            ),
        ];
        for (yaml, needle) in cases {
            let message = jobs(yaml).unwrap_err();
            assert!(message.contains(needle), "{yaml}: {message}");
        }
        let message =
            jobs("- job_name: a\n  relabel_configs:\n    - action: keepequal\n").unwrap_err();
        assert!(
            message.contains("line 3") || message.contains(":3:"),
            "{message}"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(size_text::parse_size("1024"), Ok(1024));
        assert_eq!(size_text::parse_size("1KB"), Ok(1024));
        assert_eq!(size_text::parse_size("2GiB"), Ok(2 << 30));
        assert!(size_text::parse_size("lots").is_err());
    }
}
