//! Runs the workers, one per connection, and builds the JSON summary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use crate::Args;
use crate::catalog::{self, SeriesTemplate};
use crate::encode::{BatchEncoder, EncodedRequest};
use crate::stats::{Stats, percentile, process_cpu_seconds};
use crate::target::{Rng, Target, mix};

/// What every worker needs to know; shared read-only.
#[derive(Debug)]
struct Plan {
    catalog: Vec<SeriesTemplate>,
    targets: u32,
    rounds: u64,
    start_ms: i64,
    interval_ms: i64,
    churn: f64,
    seed: u64,
    batch_size: u64,
    deadline: Option<Instant>,
}

#[derive(Debug)]
struct Sender {
    client: reqwest::Client,
    url: String,
}

#[derive(Debug, Default)]
struct WorkerResult {
    latencies_us: Vec<u32>,
    rounds_completed: u64,
    last_timestamp_ms: i64,
}

fn headers(args: &Args) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert("content-encoding", HeaderValue::from_static("snappy"));
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-protobuf"),
    );
    headers.insert(
        "x-prometheus-remote-write-version",
        HeaderValue::from_static("0.1.0"),
    );
    headers.insert(
        "user-agent",
        HeaderValue::from_static(concat!("sightline-loadgen/", env!("CARGO_PKG_VERSION"))),
    );
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header {header:?}: expected Name:Value"))?;
        let name = HeaderName::try_from(name.trim())
            .with_context(|| format!("--header {header:?}: invalid name"))?;
        let value = HeaderValue::try_from(value.trim())
            .with_context(|| format!("--header {header:?}: invalid value"))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

pub(crate) async fn run(args: &Args, start_ms: i64) -> anyhow::Result<serde_json::Value> {
    let sender = match (&args.url, args.dry_run) {
        (Some(url), false) => {
            let client = reqwest::Client::builder()
                .default_headers(headers(args)?)
                .timeout(args.timeout)
                .pool_max_idle_per_host(args.concurrency)
                .tcp_nodelay(true)
                .no_proxy()
                .build()
                .context("building the HTTP client")?;
            Some(Arc::new(Sender {
                client,
                url: url.clone(),
            }))
        }
        _ => None,
    };
    let mut began = Instant::now();
    let plan = Arc::new(Plan {
        catalog: catalog::with_histograms(args.series_per_target, args.histograms),
        targets: args.targets,
        rounds: args.rounds,
        start_ms,
        interval_ms: i64::try_from(args.interval.as_millis()).context("--interval too large")?,
        churn: args.churn,
        seed: args.seed,
        batch_size: args.batch_size,
        deadline: args.duration.map(|duration| began + duration),
    });
    let stats = Arc::new(Stats::default());
    let workers = args.concurrency.min(args.targets as usize);
    // With --pregenerate, workers encode everything, then all (and this task) meet
    // here before the clock starts.
    let start_line = args
        .pregenerate
        .then(|| Arc::new(tokio::sync::Barrier::new(workers + 1)));
    let mut handles = Vec::with_capacity(workers);
    for worker in 0..workers {
        let slots: Vec<u32> = (0..args.targets)
            .filter(|slot| *slot as usize % workers == worker)
            .collect();
        handles.push(tokio::spawn(run_worker(
            slots,
            Arc::clone(&plan),
            sender.as_ref().map(Arc::clone),
            Arc::clone(&stats),
            start_line.as_ref().map(Arc::clone),
        )));
    }
    if let Some(start_line) = &start_line {
        start_line.wait().await;
        began = Instant::now();
    }
    let cpu_seconds_before = process_cpu_seconds();
    let progress = (!args.progress.is_zero())
        .then(|| tokio::spawn(report_progress(Arc::clone(&stats), args.progress, began)));
    let mut latencies_us = Vec::new();
    let mut rounds_completed = u64::MAX;
    let mut last_timestamp_ms = start_ms;
    for handle in handles {
        let result = handle.await.context("worker task failed")??;
        latencies_us.extend(result.latencies_us);
        rounds_completed = rounds_completed.min(result.rounds_completed);
        last_timestamp_ms = last_timestamp_ms.max(result.last_timestamp_ms);
    }
    let wall_seconds = began.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu_seconds_before;
    if let Some(progress) = progress {
        progress.abort();
    }
    latencies_us.sort_unstable();

    let sent = Stats::get(&stats.samples_sent);
    let accepted = Stats::get(&stats.samples_accepted);
    let series_per_target = plan.catalog.len() as u64;
    let replaced = Stats::get(&stats.replaced_targets);
    let per_second = |count: u64| (count as f64 / wall_seconds.max(1e-9)).round();
    Ok(json!({
        "url": args.url,
        "dry_run": args.dry_run,
        "targets": args.targets,
        "series_per_target": series_per_target,
        "interval_seconds": args.interval.as_secs_f64(),
        "rounds_requested": args.rounds,
        "rounds_completed": rounds_completed,
        "churn": args.churn,
        "concurrency": workers,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "pregenerated": args.pregenerate,
        "first_timestamp_ms": start_ms,
        "last_timestamp_ms": last_timestamp_ms,
        "active_series": u64::from(args.targets) * series_per_target,
        "distinct_series": (u64::from(args.targets) + replaced) * series_per_target,
        "replaced_targets": replaced,
        "samples_sent": sent,
        "samples_accepted": accepted,
        "requests": Stats::get(&stats.requests),
        "requests_ok": Stats::get(&stats.requests_ok),
        "errors": stats.errors(),
        "bytes_sent": Stats::get(&stats.bytes_sent),
        "uncompressed_bytes": Stats::get(&stats.uncompressed_bytes),
        "wall_seconds": (wall_seconds * 1000.0).round() / 1000.0,
        "loadgen_cpu_seconds": (cpu_seconds * 1000.0).round() / 1000.0,
        "samples_per_second_sent": per_second(sent),
        "samples_per_second_accepted": per_second(accepted),
        "latency_ms_p50": f64::from(percentile(&latencies_us, 0.5)) / 1000.0,
        "latency_ms_p99": f64::from(percentile(&latencies_us, 0.99)) / 1000.0,
        "latency_ms_max": f64::from(percentile(&latencies_us, 1.0)) / 1000.0,
    }))
}

async fn report_progress(stats: Arc<Stats>, every: Duration, began: Instant) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    let mut previous = 0;
    loop {
        ticker.tick().await;
        let sent = Stats::get(&stats.samples_sent);
        let accepted = Stats::get(&stats.samples_accepted);
        eprintln!(
            "loadgen: {:.0}s sent={sent} accepted={accepted} rate={:.0}/s errors={:?}",
            began.elapsed().as_secs_f64(),
            (sent - previous) as f64 / every.as_secs_f64(),
            stats.errors(),
        );
        previous = sent;
    }
}

/// True when the target in `slot` is replaced at the start of `round`.
fn is_replaced(plan: &Plan, slot: u32, round: u64) -> bool {
    plan.churn > 0.0
        && round > 0
        && Rng::new(mix(&[plan.seed, u64::from(slot), round, 0xC4_0C4])).unit() < plan.churn
}

async fn run_worker(
    slots: Vec<u32>,
    plan: Arc<Plan>,
    sender: Option<Arc<Sender>>,
    stats: Arc<Stats>,
    start_line: Option<Arc<tokio::sync::Barrier>>,
) -> anyhow::Result<WorkerResult> {
    let mut requests = Requests::new(&slots, &plan, &stats);
    let mut latencies_us = Vec::new();
    if let Some(start_line) = start_line {
        let mut all = Vec::new();
        // The barrier must be reached even when encoding fails, or the others wait
        // for ever: keep the error for after it.
        let encoded = (|| {
            while let Some(request) = requests.next_request()? {
                all.push(request);
            }
            anyhow::Ok(())
        })();
        start_line.wait().await;
        encoded?;
        for request in all {
            send(sender.as_deref(), request, &stats, &mut latencies_us).await;
        }
    } else {
        while let Some(request) = requests.next_request()? {
            send(sender.as_deref(), request, &stats, &mut latencies_us).await;
        }
    }
    Ok(WorkerResult {
        latencies_us,
        rounds_completed: requests.rounds_completed,
        last_timestamp_ms: requests.last_timestamp_ms,
    })
}

/// One worker's requests, in sending order: its targets' series round after round,
/// cut every `batch_size` samples.
struct Requests<'a> {
    plan: &'a Plan,
    stats: &'a Stats,
    targets: Vec<Target>,
    encoder: BatchEncoder,
    /// Where the next request starts: round, target and series within it.
    round: u64,
    target: usize,
    series: usize,
    /// The current round's scrape is taken (values drawn) for `target`.
    scraped: bool,
    rounds_completed: u64,
    last_timestamp_ms: i64,
}

impl<'a> Requests<'a> {
    fn new(slots: &[u32], plan: &'a Plan, stats: &'a Stats) -> Requests<'a> {
        let targets = slots
            .iter()
            .map(|slot| {
                Target::new(
                    &plan.catalog,
                    plan.seed,
                    *slot,
                    0,
                    plan.targets,
                    plan.interval_ms,
                )
            })
            .collect();
        Requests {
            plan,
            stats,
            targets,
            encoder: BatchEncoder::new(),
            round: 0,
            target: 0,
            series: 0,
            scraped: false,
            rounds_completed: 0,
            last_timestamp_ms: plan.start_ms,
        }
    }

    /// The next request, `None` after the last (or at the deadline).
    fn next_request(&mut self) -> anyhow::Result<Option<EncodedRequest>> {
        let plan = self.plan;
        let interval_seconds = plan.interval_ms as f64 / 1000.0;
        while self.round < plan.rounds {
            if self.target == self.targets.len() {
                self.rounds_completed = self.round + 1;
                self.round += 1;
                self.target = 0;
                continue;
            }
            let round_start_ms =
                plan.start_ms + i64::try_from(self.round)?.saturating_mul(plan.interval_ms);
            let target = &mut self.targets[self.target];
            if !self.scraped {
                if plan
                    .deadline
                    .is_some_and(|deadline| Instant::now() >= deadline)
                {
                    break;
                }
                if is_replaced(plan, target.slot, self.round) {
                    *target = Target::new(
                        &plan.catalog,
                        plan.seed,
                        target.slot,
                        target.generation + 1,
                        plan.targets,
                        plan.interval_ms,
                    );
                    Stats::add(&self.stats.replaced_targets, 1);
                }
                let timestamp_ms = target.scrape_timestamp_ms(round_start_ms);
                self.last_timestamp_ms = self.last_timestamp_ms.max(timestamp_ms);
                target.scrape(&plan.catalog, timestamp_ms, interval_seconds);
                self.scraped = true;
                self.series = 0;
            }
            let timestamp_ms = target.scrape_timestamp_ms(round_start_ms);
            while self.series < target.series_count() {
                let (labels, value) = target.series(self.series);
                self.encoder.push(labels, value, timestamp_ms);
                self.series += 1;
                if self.encoder.samples() >= plan.batch_size {
                    return Ok(Some(self.encoder.take_request()?));
                }
            }
            self.target += 1;
            self.scraped = false;
        }
        // The deadline or the last round: what is left goes as one last request.
        self.round = plan.rounds;
        if self.encoder.samples() > 0 {
            return Ok(Some(self.encoder.take_request()?));
        }
        Ok(None)
    }
}

async fn send(
    sender: Option<&Sender>,
    request: EncodedRequest,
    stats: &Stats,
    latencies_us: &mut Vec<u32>,
) {
    Stats::add(&stats.samples_sent, request.samples);
    Stats::add(&stats.requests, 1);
    Stats::add(&stats.bytes_sent, request.body.len() as u64);
    Stats::add(&stats.uncompressed_bytes, request.uncompressed_bytes);
    let Some(sender) = sender else {
        return;
    };
    let began = Instant::now();
    let outcome = sender
        .client
        .post(&sender.url)
        .body(request.body)
        .send()
        .await;
    match outcome {
        Ok(response) => {
            let status = response.status();
            let body = response.bytes().await;
            latencies_us.push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
            match body {
                Ok(_) if status.is_success() => {
                    Stats::add(&stats.samples_accepted, request.samples);
                    Stats::add(&stats.requests_ok, 1);
                }
                Ok(body) => stats.record_error(status.as_str(), &String::from_utf8_lossy(&body)),
                Err(error) => stats.record_error("transport", &error.to_string()),
            }
        }
        Err(error) => {
            let kind = if error.is_timeout() {
                "timeout"
            } else {
                "transport"
            };
            stats.record_error(kind, &format!("{error:?}"));
        }
    }
}
