//! The scrape manager: one task per job that discovers its targets (static, and
//! file SD re-read every few seconds) and keeps one loop task per target running,
//! starting loops for new targets and stopping (with staleness markers) the loops of
//! targets that went away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::ScrapeConfig;
use crate::discovery::FileSd;
use crate::samples::SampleRules;
use crate::scrape_loop::{self, JobContext, Stop};
use crate::target::{Target, targets};
use crate::{Error, Result, ScrapeSink, ScrapeStats};

/// Knobs of the manager itself (not of Prometheus' configuration).
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// How often file SD files are re-read (at most; a job's `refresh_interval` may
    /// make it more often).
    pub file_sd_poll_interval: Duration,
    /// `User-Agent` of scrape requests.
    pub user_agent: String,
    /// Label limits of every scraped series (the server's tenant limits); a series
    /// over them fails its scrape.
    pub label_limits: sightline_pipeline::LabelLimits,
}

impl Default for ManagerOptions {
    fn default() -> ManagerOptions {
        ManagerOptions {
            file_sd_poll_interval: Duration::from_secs(5),
            user_agent: "Sightline".to_string(),
            label_limits: sightline_pipeline::LabelLimits::default(),
        }
    }
}

/// Running scrapes; stop them with [`ScrapeManager::stop`].
#[derive(Debug)]
pub struct ScrapeManager {
    jobs: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    stats: Arc<ScrapeStats>,
}

impl ScrapeManager {
    /// Starts every job on the current tokio runtime. Job names must be unique.
    pub fn start<S: ScrapeSink>(
        configs: Vec<ScrapeConfig>,
        sink: Arc<S>,
        options: ManagerOptions,
    ) -> Result<ScrapeManager> {
        let mut names: Vec<&str> = configs.iter().map(|c| c.job_name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(Error::DuplicateJob(pair[0].to_string()));
        }
        let stats = Arc::new(ScrapeStats::default());
        let (stop, stop_receiver) = watch::channel(false);
        let mut jobs = Vec::with_capacity(configs.len());
        for config in configs {
            let client = reqwest::Client::builder()
                .user_agent(options.user_agent.clone())
                .build()
                .map_err(|e| Error::HttpClient(e.to_string()))?;
            let context = Arc::new(JobContext {
                job_name: config.job_name.clone(),
                tenant: config.tenant.clone(),
                client,
                rules: SampleRules {
                    honor_labels: config.honor_labels,
                    honor_timestamps: config.honor_timestamps,
                    sample_limit: config.sample_limit,
                    metric_relabel_configs: config.metric_relabel_configs.clone(),
                    label_limits: options.label_limits,
                },
                basic_auth: config.basic_auth.clone(),
                authorization: config.authorization.clone(),
                body_limit: scrape_loop::body_limit(config.body_size_limit),
                stats: Arc::clone(&stats),
            });
            jobs.push(tokio::spawn(run_job(
                config,
                context,
                Arc::clone(&sink),
                options.clone(),
                stop_receiver.clone(),
            )));
        }
        Ok(ScrapeManager { jobs, stop, stats })
    }

    /// Counters of every job.
    pub fn stats(&self) -> Arc<ScrapeStats> {
        Arc::clone(&self.stats)
    }

    /// Stops every loop (no staleness markers: the targets did not go away) and waits
    /// for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for job in self.jobs {
            let _ = job.await;
        }
    }
}

/// A running target loop.
struct RunningTarget {
    stop: oneshot::Sender<Stop>,
    handle: JoinHandle<()>,
}

async fn run_job<S: ScrapeSink>(
    config: ScrapeConfig,
    context: Arc<JobContext>,
    sink: Arc<S>,
    options: ManagerOptions,
    mut stop: watch::Receiver<bool>,
) {
    let static_groups = config.static_configs.clone();
    let mut file_sds: Vec<FileSd> = config
        .file_sd_configs
        .iter()
        .map(|_| FileSd::default())
        .collect();
    let poll = config
        .file_sd_configs
        .iter()
        .map(|f| f.refresh_interval)
        .fold(options.file_sd_poll_interval, Duration::min)
        .max(Duration::from_millis(100));
    let mut running: HashMap<u64, RunningTarget> = HashMap::new();
    // Loops of removed targets, still writing their staleness markers.
    let mut retiring: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let mut groups = static_groups.clone();
        if !config.file_sd_configs.is_empty() {
            let file_sd_configs = config.file_sd_configs.clone();
            let mut states = std::mem::take(&mut file_sds);
            let read = tokio::task::spawn_blocking(move || {
                let groups: Vec<_> = states
                    .iter_mut()
                    .zip(&file_sd_configs)
                    .flat_map(|(state, config)| state.refresh(config))
                    .collect();
                (states, groups)
            })
            .await;
            match read {
                Ok((states, file_groups)) => {
                    file_sds = states;
                    groups.extend(file_groups);
                }
                Err(e) => {
                    tracing::error!(job = %config.job_name, error = %e, "file_sd refresh task failed");
                    file_sds = config
                        .file_sd_configs
                        .iter()
                        .map(|_| FileSd::default())
                        .collect();
                }
            }
        }
        let wanted: HashMap<u64, Target> = targets(&config, &groups)
            .into_iter()
            .map(|target| (target.key(), target))
            .collect();
        retiring.retain(|handle| !handle.is_finished());
        sync_targets(&context, &sink, &mut running, &mut retiring, wanted);
        context.stats.set_targets(&config.job_name, running.len());
        if config.file_sd_configs.is_empty() {
            let _ = stop.wait_for(|stopping| *stopping).await;
            break;
        }
        tokio::select! {
            _ = stop.wait_for(|stopping| *stopping) => break,
            () = tokio::time::sleep(poll) => {}
        }
    }
    for (_, target) in running.drain() {
        let _ = target.stop.send(Stop::Shutdown);
        let _ = target.handle.await;
    }
    for handle in retiring {
        let _ = handle.await;
    }
    context.stats.set_targets(&config.job_name, 0);
}

/// Starts loops for new targets and stops those of targets no longer wanted.
fn sync_targets<S: ScrapeSink>(
    context: &Arc<JobContext>,
    sink: &Arc<S>,
    running: &mut HashMap<u64, RunningTarget>,
    retiring: &mut Vec<JoinHandle<()>>,
    mut wanted: HashMap<u64, Target>,
) {
    let gone: Vec<u64> = running
        .keys()
        .filter(|key| !wanted.contains_key(key))
        .copied()
        .collect();
    for key in gone {
        if let Some(target) = running.remove(&key) {
            // The loop writes its staleness markers and ends on its own.
            let _ = target.stop.send(Stop::TargetRemoved);
            retiring.push(target.handle);
        }
    }
    running.retain(|_, target| !target.handle.is_finished());
    for (key, target) in wanted.drain() {
        if running.contains_key(&key) {
            continue;
        }
        tracing::info!(job = %context.job_name, target = %target.url, labels = %target.labels, "scrape target added");
        let (stop, stop_receiver) = oneshot::channel();
        let handle = tokio::spawn(scrape_loop::run(
            Arc::clone(context),
            target,
            Arc::clone(sink),
            stop_receiver,
        ));
        running.insert(key, RunningTarget { stop, handle });
    }
}

#[cfg(test)]
mod tests;
