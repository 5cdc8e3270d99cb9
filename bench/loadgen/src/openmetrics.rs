//! Writes the generated samples as OpenMetrics text with timestamps, for peers that
//! cannot take old samples over remote_write (Prometheus backfills them with
//! `promtool tsdb create-blocks-from openmetrics`).
//!
//! The samples are exactly those `run` sends for the same options (same seed, same
//! targets, same timestamps and values): each target is scraped round by round the
//! same way. Churn is not supported here. Files hold one `--openmetrics-window` of
//! time each (aligned to multiples of it since the epoch) and end with `# EOF`;
//! promtool 2.42 re-parses its whole input once per 2h block it writes, so one file
//! per block keeps a week-long backfill linear in its size.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;

use crate::Args;
use crate::catalog;
use crate::encode::decode_labels;
use crate::target::Target;

/// `name{label="value",...}` of one series, with OpenMetrics label escaping.
fn series_text(labels: &[(String, String)]) -> String {
    let mut name = "";
    let mut text = String::new();
    for (label, value) in labels {
        if label == "__name__" {
            name = value;
            continue;
        }
        text.push(if text.is_empty() { '{' } else { ',' });
        text.push_str(label);
        text.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '"' => text.push_str("\\\""),
                '\n' => text.push_str("\\n"),
                c => text.push(c),
            }
        }
        text.push('"');
    }
    if !text.is_empty() {
        text.push('}');
    }
    format!("{name}{text}")
}

/// Open output files by window index; finished ones are closed with `# EOF`.
#[derive(Debug)]
struct Files {
    dir: PathBuf,
    window_ms: i64,
    open: BTreeMap<i64, BufWriter<File>>,
    written: Vec<PathBuf>,
    bytes: u64,
}

impl Files {
    fn writer(&mut self, timestamp_ms: i64) -> anyhow::Result<&mut BufWriter<File>> {
        let window = timestamp_ms.div_euclid(self.window_ms);
        if !self.open.contains_key(&window) {
            let path = self.dir.join(format!("{:013}.om", window * self.window_ms));
            let file =
                File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            self.written.push(path);
            self.open
                .insert(window, BufWriter::with_capacity(1 << 20, file));
        }
        self.open
            .get_mut(&window)
            .context("output file just opened")
    }

    /// Closes every file whose window ends at or before `timestamp_ms`.
    fn close_before(&mut self, timestamp_ms: i64) -> anyhow::Result<()> {
        let first_open = timestamp_ms.div_euclid(self.window_ms);
        let still_open = self.open.split_off(&first_open);
        let finished = std::mem::replace(&mut self.open, still_open);
        for (_, mut writer) in finished {
            writer.write_all(b"# EOF\n")?;
            writer.flush()?;
            self.bytes += writer.get_ref().metadata()?.len();
        }
        Ok(())
    }
}

pub(crate) fn write(args: &Args, start_ms: i64, dir: &Path) -> anyhow::Result<serde_json::Value> {
    if args.churn > 0.0 {
        bail!("--openmetrics-dir does not support --churn");
    }
    let window_ms = i64::try_from(args.openmetrics_window.as_millis())
        .context("--openmetrics-window too large")?;
    if window_ms <= 0 {
        bail!("--openmetrics-window must be at least 1ms");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let began = Instant::now();
    let catalog = catalog::with_histograms(args.series_per_target, args.histograms);
    let interval_ms = i64::try_from(args.interval.as_millis()).context("--interval too large")?;
    let interval_seconds = interval_ms as f64 / 1000.0;
    let mut targets: Vec<Target> = (0..args.targets)
        .map(|slot| Target::new(&catalog, args.seed, slot, 0, args.targets, interval_ms))
        .collect();
    let mut names: Vec<Vec<String>> = Vec::with_capacity(targets.len());
    for target in &targets {
        let mut target_names = Vec::with_capacity(target.series_count());
        for index in 0..target.series_count() {
            let labels =
                decode_labels(target.series(index).0).context("decoding generated labels")?;
            target_names.push(series_text(&labels));
        }
        names.push(target_names);
    }
    let mut files = Files {
        dir: dir.to_owned(),
        window_ms,
        open: BTreeMap::new(),
        written: Vec::new(),
        bytes: 0,
    };
    let (mut samples, mut first_ms, mut last_ms) = (0u64, i64::MAX, i64::MIN);
    let mut line = String::with_capacity(512);
    for round in 0..args.rounds {
        let round_start_ms = start_ms + i64::try_from(round)?.saturating_mul(interval_ms);
        // Every later timestamp is at or after this round's start.
        files.close_before(round_start_ms)?;
        for (target, target_names) in targets.iter_mut().zip(&names) {
            let timestamp_ms = target.scrape_timestamp_ms(round_start_ms);
            target.scrape(&catalog, timestamp_ms, interval_seconds);
            first_ms = first_ms.min(timestamp_ms);
            last_ms = last_ms.max(timestamp_ms);
            let seconds = format!(
                "{}.{:03}",
                timestamp_ms.div_euclid(1000),
                timestamp_ms.rem_euclid(1000)
            );
            let writer = files.writer(timestamp_ms)?;
            for (index, name) in target_names.iter().enumerate() {
                line.clear();
                // Display of f64 is the shortest text that parses back to the same value.
                writeln!(line, "{name} {} {seconds}", target.series(index).1)?;
                writer.write_all(line.as_bytes())?;
            }
            samples += target_names.len() as u64;
        }
    }
    files.close_before(i64::MAX)?;
    Ok(json!({
        "openmetrics_dir": dir.display().to_string(),
        "files": files.written.len(),
        "bytes": files.bytes,
        "targets": args.targets,
        "series_per_target": catalog.len(),
        "active_series": u64::from(args.targets) * catalog.len() as u64,
        "rounds": args.rounds,
        "samples_written": samples,
        "first_timestamp_ms": first_ms,
        "last_timestamp_ms": last_ms,
        "wall_seconds": (began.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_text_escapes_values() {
        let labels = vec![
            ("__name__".to_owned(), "up".to_owned()),
            ("a".to_owned(), "x\"y\\z\nw".to_owned()),
            ("b".to_owned(), "+Inf".to_owned()),
        ];
        assert_eq!(series_text(&labels), r#"up{a="x\"y\\z\nw",b="+Inf"}"#);
        assert_eq!(series_text(&labels[..1]), "up");
    }
}
