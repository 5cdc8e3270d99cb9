//! `sightline-loadgen`: sends realistic Prometheus remote_write 1.0 traffic to any
//! receiver (Sightline, Prometheus, VictoriaMetrics…) and prints one JSON summary line.
//!
//! It simulates a fleet of node_exporter-like targets scraped every `--interval` of
//! *simulated* time; rounds are sent as fast as the receiver accepts them. Each
//! connection (`--concurrency`) owns a fixed share of the targets and sends their
//! samples in order, like a Prometheus remote_write shard, so no receiver sees a
//! series' samples out of order. The generator knows nothing of any receiver's
//! internals; it only speaks the wire protocol.

mod catalog;
mod encode;
mod openmetrics;
mod run;
mod stats;
mod target;

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "sightline-loadgen",
    about = "Send realistic Prometheus remote_write traffic and print a JSON summary"
)]
pub(crate) struct Args {
    /// remote_write endpoint, e.g. http://127.0.0.1:9090/api/v1/write
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Number of simulated scrape targets (node_exporter-like hosts).
    #[arg(long, default_value_t = 100)]
    pub(crate) targets: u32,
    /// Series per target, in a node_exporter-like mix.
    #[arg(long, default_value_t = 500)]
    pub(crate) series_per_target: usize,
    /// Handlers of a classic histogram family `http_request_duration_seconds` added to
    /// every target (14 series each: 12 `_bucket{le}`, `_sum`, `_count`), on top of
    /// `--series-per-target`. 0: none.
    #[arg(long, default_value_t = 0)]
    pub(crate) histograms: usize,
    /// Simulated scrape interval (simulated time between rounds), e.g. 15s.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub(crate) interval: Duration,
    /// Encode every request before the clock starts, then only send: the generator's
    /// own CPU (snappy and protobuf encoding) then takes nothing from a system under
    /// test on the same cores. Holds all request bodies in memory (about 26 bytes per
    /// sample); not with `--duration`.
    #[arg(long, conflicts_with = "duration")]
    pub(crate) pregenerate: bool,
    /// Number of rounds (scrapes of every target) to send.
    #[arg(long, default_value_t = 100)]
    pub(crate) rounds: u64,
    /// Stop after this much wall time even if rounds remain, e.g. 60s.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Probability that a target is replaced by a new one (new `instance`) each round.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) churn: f64,
    /// Concurrent connections (requests in flight); each owns a share of the targets.
    #[arg(long, default_value_t = 8)]
    pub(crate) concurrency: usize,
    /// Samples per request (Prometheus' max_samples_per_send).
    #[arg(long, default_value_t = 2000)]
    pub(crate) batch_size: u64,
    /// Simulated time of round 0: unix seconds, or `now-DURATION` (e.g. now-2h).
    /// Default: now - rounds * interval, so no timestamp is in the future.
    #[arg(long)]
    pub(crate) start: Option<String>,
    /// Seed of every random choice; the same seed sends the same data.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Extra request header `Name:Value` (repeatable), e.g. X-Scope-OrgID:bench.
    #[arg(long = "header")]
    pub(crate) headers: Vec<String>,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Worker threads of the generator's runtime (default: number of CPUs).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Print progress to stderr this often (0s: never).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) progress: Duration,
    /// Generate, encode and compress everything but send nothing (measures the
    /// generator's own cost).
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Write the samples as OpenMetrics text with timestamps into this directory
    /// instead of sending them (for `promtool tsdb create-blocks-from openmetrics`):
    /// one file per `--openmetrics-window` of time, each ending with `# EOF`. The
    /// samples are those the same options send over remote_write.
    #[arg(long)]
    pub(crate) openmetrics_dir: Option<std::path::PathBuf>,
    /// Time span of one OpenMetrics file, aligned to multiples of it since the epoch
    /// (promtool re-reads its whole input once per 2h block it writes, so 2h files
    /// keep backfilling linear).
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub(crate) openmetrics_window: Duration,
}

/// Parses `1500ms`, `15s`, `2m`, `1h`, `1d` or a plain number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 15s, 500ms, 2m"))?;
    let seconds_per_unit = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => return Err(format!("invalid duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(number * seconds_per_unit)
        .map_err(|error| format!("invalid duration {text:?}: {error}"))
}

/// Resolves `--start` to unix milliseconds.
fn start_ms(args: &Args, now_ms: i64) -> anyhow::Result<i64> {
    let interval_ms = i64::try_from(args.interval.as_millis()).context("--interval too large")?;
    let rounds = i64::try_from(args.rounds).context("--rounds too large")?;
    match args.start.as_deref() {
        None => Ok(now_ms - rounds.saturating_mul(interval_ms)),
        Some(text) => {
            if let Some(ago) = text.strip_prefix("now-") {
                let ago = parse_duration(ago).map_err(anyhow::Error::msg)?;
                return Ok(now_ms - i64::try_from(ago.as_millis()).context("--start too far back")?);
            }
            let seconds: f64 = text.parse().with_context(|| {
                format!("--start {text:?}: expected unix seconds or now-DURATION")
            })?;
            Ok((seconds * 1000.0).round() as i64)
        }
    }
}

fn main() -> anyhow::Result<()> {
    // reqwest is built with rustls and no crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if args.url.is_none() && !args.dry_run && args.openmetrics_dir.is_none() {
        bail!("--url is required (or --dry-run, or --openmetrics-dir)");
    }
    if args.batch_size == 0 || args.concurrency == 0 || args.targets == 0 {
        bail!("--batch-size, --concurrency and --targets must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.churn) {
        bail!("--churn must be within [0, 1], got {}", args.churn);
    }
    if args.interval.as_millis() == 0 {
        bail!("--interval must be at least 1ms");
    }
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("clock before 1970")?
            .as_millis(),
    )
    .context("clock too far in the future")?;
    let start = start_ms(&args, now_ms)?;
    if let Some(dir) = &args.openmetrics_dir {
        let summary = openmetrics::write(&args, start, dir)?;
        println!("{summary}");
        return Ok(());
    }

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build().context("starting the tokio runtime")?;
    let summary = runtime.block_on(run::run(&args, start))?;
    println!("{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("15x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn default_start_keeps_timestamps_in_the_past() {
        let args = Args::parse_from([
            "loadgen",
            "--dry-run",
            "--rounds",
            "10",
            "--interval",
            "15s",
        ]);
        assert_eq!(start_ms(&args, 1_000_000).unwrap(), 1_000_000 - 150_000);
        let args = Args::parse_from(["loadgen", "--dry-run", "--start", "now-1h"]);
        assert_eq!(start_ms(&args, 10_000_000).unwrap(), 10_000_000 - 3_600_000);
        let args = Args::parse_from(["loadgen", "--dry-run", "--start", "1700000000"]);
        assert_eq!(start_ms(&args, 0).unwrap(), 1_700_000_000_000);
    }
}
