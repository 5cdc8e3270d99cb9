//! Counters shared by the workers, and the final summary.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many error response bodies are echoed to stderr before going quiet.
const ERRORS_LOGGED: u64 = 5;

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) samples_sent: AtomicU64,
    pub(crate) samples_accepted: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) requests_ok: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) uncompressed_bytes: AtomicU64,
    pub(crate) replaced_targets: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    errors_logged: AtomicU64,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts one failed request under `kind` (an HTTP status code, `timeout` or
    /// `transport`); the first few messages go to stderr.
    pub(crate) fn record_error(&self, kind: &str, message: &str) {
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(kind.to_owned()).or_insert(0) += 1;
        }
        if self.errors_logged.fetch_add(1, Ordering::Relaxed) < ERRORS_LOGGED {
            let message: String = message.chars().take(300).collect();
            eprintln!("loadgen: request failed ({kind}): {}", message.trim());
        }
    }

    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .map(|errors| errors.clone())
            .unwrap_or_default()
    }
}

/// CPU time (user + system) this process has used so far, in seconds.
pub(crate) fn process_cpu_seconds() -> f64 {
    // SAFETY: `rusage` is plain old data, so all-zero bytes are a valid value, and
    // getrusage only writes into the struct we pass it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF is a valid `who`, and `usage` is a live, writable rusage.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if status != 0 {
        return 0.0;
    }
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The `quantile` (0..=1) of `sorted` values, 0 when empty.
pub(crate) fn percentile(sorted: &[u32], quantile: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * quantile).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_measured() {
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(process_cpu_seconds() > 0.0);
    }

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&[], 0.5), 0);
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.0), 1);
        assert_eq!(percentile(&values, 0.5), 51);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&values, 1.0), 100);
    }

    #[test]
    fn errors_are_counted_by_kind() {
        let stats = Stats::default();
        stats.record_error("429", "too many");
        stats.record_error("429", "too many");
        stats.record_error("transport", "refused");
        let errors = stats.errors();
        assert_eq!(errors.get("429"), Some(&2));
        assert_eq!(errors.get("transport"), Some(&1));
    }
}
