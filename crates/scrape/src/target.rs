//! From a discovered address to a scrape target: Prometheus' `PopulateLabels`.
//!
//! The group's labels and `__address__`, then (when absent) `job`, `__scheme__`,
//! `__metrics_path__`, `__scrape_interval__`, `__scrape_timeout__` and `__param_<name>`
//! (first value of each `params` entry); then `relabel_configs`; then a default port
//! for the scheme, `instance` from `__address__` when absent, and every label starting
//! with `__` is dropped from the target's labels.

use std::collections::BTreeMap;
use std::time::Duration;

use sightline_model::{Labels, LabelsBuilder};
use sightline_pipeline::relabel;

use crate::config::ScrapeConfig;
use crate::discovery::TargetGroup;

pub(crate) const ADDRESS_LABEL: &str = "__address__";
pub(crate) const SCHEME_LABEL: &str = "__scheme__";
pub(crate) const METRICS_PATH_LABEL: &str = "__metrics_path__";
pub(crate) const INTERVAL_LABEL: &str = "__scrape_interval__";
pub(crate) const TIMEOUT_LABEL: &str = "__scrape_timeout__";
pub(crate) const PARAM_PREFIX: &str = "__param_";

/// A target ready to scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The labels every scraped series gets (`job`, `instance`, ...).
    pub labels: Labels,
    /// Everything before the `__*` labels were dropped, for diagnostics.
    pub discovered_labels: Labels,
    pub url: reqwest::Url,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// Identity: the same labels and URL are the same target.
    pub fn key(&self) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&self.labels.fingerprint().to_le_bytes());
        hasher.update(self.url.as_str().as_bytes());
        hasher.digest()
    }
}

/// Every target of `groups`; a target dropped by relabeling is absent, one with
/// invalid labels is logged and skipped.
pub fn targets(config: &ScrapeConfig, groups: &[TargetGroup]) -> Vec<Target> {
    let mut out = Vec::new();
    for group in groups {
        for address in &group.targets {
            match populate(config, &group.labels, address) {
                Ok(Some(target)) => out.push(target),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(job = %config.job_name, address = %address, error = %e, "target skipped")
                }
            }
        }
    }
    out
}

/// One target from one address, or `None` when relabeling drops it.
pub fn populate(
    config: &ScrapeConfig,
    group_labels: &BTreeMap<String, String>,
    address: &str,
) -> Result<Option<Target>, String> {
    let mut builder = LabelsBuilder::default();
    for (name, value) in group_labels {
        builder.set(name.clone(), value.clone());
    }
    builder.set(ADDRESS_LABEL, address);
    let format = sightline_model::time::format_duration;
    let defaults = [
        ("job", config.job_name.clone()),
        (SCHEME_LABEL, config.scheme.as_str().to_string()),
        (METRICS_PATH_LABEL, config.metrics_path.clone()),
        (INTERVAL_LABEL, format(config.scrape_interval)),
        (TIMEOUT_LABEL, format(config.scrape_timeout)),
    ];
    for (name, value) in defaults {
        if builder.get(name).is_none() {
            builder.set(name, value);
        }
    }
    for (name, values) in &config.params {
        let label = format!("{PARAM_PREFIX}{name}");
        if let Some(first) = values.first()
            && builder.get(&label).is_none()
        {
            builder.set(label, first.clone());
        }
    }
    if !relabel::process_builder(&mut builder, &config.relabel_configs) {
        return Ok(None);
    }
    let Some(address) = builder.get(ADDRESS_LABEL).map(str::to_string) else {
        return Err("no address".to_string());
    };
    let scheme = builder.get(SCHEME_LABEL).unwrap_or("http").to_string();
    if scheme != "http" {
        return Err(format!("scheme {scheme:?} is not supported (http only)"));
    }
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let address = with_default_port(&address, &scheme);
    builder.set(ADDRESS_LABEL, address.clone());
    let interval = label_duration(&builder, INTERVAL_LABEL)?;
    let timeout = label_duration(&builder, TIMEOUT_LABEL)?;
    if interval.is_zero() || timeout.is_zero() {
        return Err("scrape interval and timeout must be above 0".to_string());
    }
    if timeout > interval {
        return Err(format!(
            "scrape timeout {} is greater than scrape interval {}",
            format(timeout),
            format(interval)
        ));
    }
    let path = builder
        .get(METRICS_PATH_LABEL)
        .unwrap_or("/metrics")
        .to_string();
    let url = target_url(config, &builder, &scheme, &address, &path)?;
    let discovered_labels = builder.build();
    if builder.get("instance").is_none() {
        builder.set("instance", address);
    }
    let labels: Vec<(String, String)> = builder
        .build()
        .iter()
        .filter(|l| !l.name.starts_with("__"))
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    Ok(Some(Target {
        labels: Labels::from_pairs(labels),
        discovered_labels,
        url,
        interval,
        timeout,
    }))
}

fn label_duration(builder: &LabelsBuilder, name: &str) -> Result<Duration, String> {
    let text = builder.get(name).unwrap_or("");
    sightline_model::time::parse_duration(text).map_err(|e| format!("{name}: {e}"))
}

/// `host` gets `:80` (http) or `:443` (https) when it has no port, as in Prometheus.
fn with_default_port(address: &str, scheme: &str) -> String {
    let has_port = match address.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        return address.to_string();
    }
    let port = if scheme == "https" { 443 } else { 80 };
    if address.contains(':') && !address.starts_with('[') {
        return format!("[{address}]:{port}");
    }
    format!("{address}:{port}")
}

/// `scheme://address/path?params`, where `__param_<name>` labels replace the first
/// value of `params[name]`.
fn target_url(
    config: &ScrapeConfig,
    builder: &LabelsBuilder,
    scheme: &str,
    address: &str,
    path: &str,
) -> Result<reqwest::Url, String> {
    let mut params: BTreeMap<String, Vec<String>> = config.params.clone();
    for label in builder.build().iter() {
        if let Some(name) = label.name.strip_prefix(PARAM_PREFIX) {
            let values = params.entry(name.to_string()).or_default();
            match values.first_mut() {
                Some(first) => *first = label.value.clone(),
                None => values.push(label.value.clone()),
            }
        }
    }
    let mut url = reqwest::Url::parse(&format!("{scheme}://{address}{path}"))
        .map_err(|e| format!("cannot build the URL of {address}{path}: {e}"))?;
    if !params.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, values) in &params {
            for value in values {
                query.append_pair(name, value);
            }
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> ScrapeConfig {
        let mut jobs: Vec<ScrapeConfig> = serde_saphyr::from_str(yaml).unwrap();
        jobs.remove(0)
    }

    fn one(config: &ScrapeConfig, address: &str) -> Option<Target> {
        populate(
            config,
            &BTreeMap::from([("env".to_string(), "prod".to_string())]),
            address,
        )
        .unwrap()
    }

    #[test]
    fn default_labels_and_url() {
        let config = job("- {job_name: node, scrape_interval: 15s, params: {a: [b, c]}}");
        let target = one(&config, "host:9100").unwrap();
        assert_eq!(
            target.labels,
            Labels::from_pairs([("env", "prod"), ("instance", "host:9100"), ("job", "node")])
        );
        assert_eq!(target.url.as_str(), "http://host:9100/metrics?a=b&a=c");
        assert_eq!(target.interval, Duration::from_secs(15));
        assert_eq!(target.discovered_labels.get("__param_a"), Some("b"));
        assert_eq!(
            one(&config, "host").unwrap().url.as_str(),
            "http://host/metrics?a=b&a=c"
        );
        assert_eq!(
            one(&config, "host").unwrap().labels.get("instance"),
            Some("host:80")
        );
        assert_eq!(
            one(&config, "::1").unwrap().labels.get("instance"),
            Some("[::1]:80")
        );
    }

    #[test]
    fn relabeling_drives_the_target() {
        let config = job(r#"
- job_name: blackbox
  relabel_configs:
    - {source_labels: [__address__], target_label: __param_target}
    - {source_labels: [__param_target], target_label: instance}
    - {target_label: __address__, replacement: 'exporter:9115'}
    - {target_label: __metrics_path__, replacement: /probe}
    - {target_label: __scrape_interval__, replacement: 30s}
    - {source_labels: [env], regex: dev, action: drop}
"#);
        let target = one(&config, "example.com").unwrap();
        assert_eq!(
            target.url.as_str(),
            "http://exporter:9115/probe?target=example.com"
        );
        assert_eq!(target.labels.get("instance"), Some("example.com"));
        assert_eq!(target.interval, Duration::from_secs(30));
        let dev = BTreeMap::from([("env".to_string(), "dev".to_string())]);
        assert_eq!(populate(&config, &dev, "example.com"), Ok(None));
    }

    #[test]
    fn bad_targets_are_errors() {
        let config = job(
            "- {job_name: a, relabel_configs: [{target_label: __scrape_timeout__, replacement: 2m}]}",
        );
        assert!(
            populate(&config, &BTreeMap::new(), "h:1")
                .unwrap_err()
                .contains("greater")
        );
        let config = job("- {job_name: a}");
        assert!(populate(&config, &BTreeMap::new(), "h/x").is_err());
    }
}
