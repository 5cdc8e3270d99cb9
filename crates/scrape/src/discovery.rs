//! Target discovery: `static_configs` and `file_sd_configs`.
//!
//! File SD reads JSON (`.json`) or YAML (`.yml`, `.yaml`) files holding a list of
//! `{targets: [...], labels: {...}}` groups, as Prometheus does; the last path element
//! may be a glob. Each group gets `__meta_filepath`. A file that cannot be read or
//! parsed keeps the groups it had last time (with a warning), as in Prometheus.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::FileSdConfig;

/// Targets sharing labels, as a discovery source sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// `host:port` of each target (`__address__`).
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Refuses what Prometheus refuses in `files`: an extension other than `.json`,
/// `.yml`, `.yaml`, or a glob anywhere but in the last path element.
pub fn check_file_pattern(pattern: &str) -> Result<(), String> {
    let path = Path::new(pattern);
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !matches!(extension, "json" | "yml" | "yaml") {
        return Err(format!(
            "file_sd_configs file {pattern:?} must end in .json, .yml or .yaml"
        ));
    }
    let parent = path
        .parent()
        .map(|p| p.to_string_lossy())
        .unwrap_or_default();
    if parent.contains(['*', '?', '[']) {
        return Err(format!(
            "file_sd_configs file {pattern:?}: only the last path element may be a glob"
        ));
    }
    glob::Pattern::new(pattern)
        .map(|_| ())
        .map_err(|e| format!("file_sd_configs file {pattern:?} is not a valid glob: {e}"))
}

/// What the files of one `file_sd_configs` entry held when last read.
#[derive(Debug, Default)]
pub struct FileSd {
    by_file: HashMap<PathBuf, Vec<TargetGroup>>,
}

impl FileSd {
    /// Re-reads every file the patterns match and returns all groups, sorted by file.
    /// BLOCKING (file I/O).
    pub fn refresh(&mut self, config: &FileSdConfig) -> Vec<TargetGroup> {
        let mut matched = Vec::new();
        for pattern in &config.files {
            match glob::glob(pattern) {
                Ok(paths) => matched.extend(paths.filter_map(|p| p.ok())),
                Err(e) => {
                    tracing::warn!(pattern = %pattern, error = %e, "file_sd pattern is not valid")
                }
            }
        }
        matched.sort();
        matched.dedup();
        self.by_file.retain(|path, _| matched.contains(path));
        for path in &matched {
            match read_groups(path) {
                Ok(groups) => {
                    self.by_file.insert(path.clone(), groups);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read file_sd file; keeping its previous targets");
                }
            }
        }
        let mut files: Vec<&PathBuf> = self.by_file.keys().collect();
        files.sort();
        files
            .into_iter()
            .flat_map(|path| self.by_file[path].iter().cloned())
            .collect()
    }
}

/// The groups of one file, each labeled with `__meta_filepath`.
pub fn read_groups(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let mut groups: Vec<TargetGroup> = if is_json {
        serde_json::from_str(&text).map_err(|e| e.to_string())?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_saphyr::from_str(&text).map_err(|e| e.to_string())?
    };
    for group in &mut groups {
        for name in group.labels.keys() {
            if !sightline_pipeline::relabel::is_valid_label_name(name) {
                return Err(format!("{name:?} is not a valid label name"));
            }
        }
        group
            .labels
            .insert("__meta_filepath".to_string(), path.display().to_string());
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn patterns_are_checked() {
        assert!(check_file_pattern("/etc/targets/*.json").is_ok());
        assert!(check_file_pattern("targets.yml").is_ok());
        assert!(check_file_pattern("/etc/*/targets.json").is_err());
        assert!(check_file_pattern("/etc/targets.txt").is_err());
    }

    #[test]
    fn files_are_read_and_failures_keep_old_groups() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("a.json");
        let yaml = dir.path().join("b.yml");
        std::fs::write(
            &json,
            r#"[{"targets": ["h1:1", "h2:2"], "labels": {"env": "x"}}]"#,
        )
        .unwrap();
        std::fs::write(&yaml, "- targets: ['h3:3']\n").unwrap();
        let config = FileSdConfig {
            files: vec![
                format!("{}/*.json", dir.path().display()),
                yaml.display().to_string(),
            ],
            refresh_interval: Duration::from_secs(60),
        };
        let mut sd = FileSd::default();
        let groups = sd.refresh(&config);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].targets, ["h1:1", "h2:2"]);
        assert_eq!(groups[0].labels["env"], "x");
        assert_eq!(
            groups[0].labels["__meta_filepath"],
            json.display().to_string()
        );
        std::fs::write(&json, "not json").unwrap();
        assert_eq!(
            sd.refresh(&config),
            groups,
            "a broken file keeps its targets"
        );
        std::fs::remove_file(&json).unwrap();
        let groups = sd.refresh(&config);
        assert_eq!(groups.len(), 1, "a removed file takes its targets away");
        assert_eq!(groups[0].targets, ["h3:3"]);
    }
}
