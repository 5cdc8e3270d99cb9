//! Background housekeeping and shutdown: every `storage.metrics.maintenance_interval`
//! each tenant's store runs `maintain()` (cut blocks, compact, retention, WAL
//! truncation) on a blocking thread; SIGTERM/SIGINT start a graceful shutdown.

use std::time::Duration;

use tokio::sync::watch;

use crate::state::AppState;

/// Runs `maintain()` on every store once per interval until `shutdown` turns true.
/// Stores are maintained one after another so housekeeping never takes more than
/// one blocking thread.
pub(crate) async fn run_maintenance(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let interval = state.config().storage.metrics.maintenance_interval.0;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        maintain_all(&state).await;
    }
}

/// How often freed heap memory is handed back to the OS.
const MEMORY_TRIM_INTERVAL: Duration = Duration::from_secs(5);

/// Every [`MEMORY_TRIM_INTERVAL`], asks glibc to return free heap pages to the OS
/// (`malloc_trim`), until `shutdown` turns true. glibc only gives back memory at the
/// top of its heaps on its own; request buffers freed in the middle stayed resident
/// (measured on the bench load: 87.6 MB RSS before a trim, 76.1 MB after).
pub(crate) async fn run_memory_trim(mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(MEMORY_TRIM_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        // A few milliseconds over a large heap: off the async workers.
        let _ = tokio::task::spawn_blocking(trim_heap).await;
    }
}

fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's own heaps; it is safe
    // to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// One housekeeping pass over every tenant; failures are logged, never fatal.
pub(crate) async fn maintain_all(state: &AppState) {
    for (tenant, db) in state.all_metrics_dbs() {
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || db.maintain()).await;
        match result {
            Ok(Ok(())) => tracing::debug!(
                tenant = %tenant,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "maintenance done"
            ),
            Ok(Err(e)) => tracing::error!(tenant = %tenant, error = %e, "maintenance failed"),
            Err(e) => tracing::error!(tenant = %tenant, error = %e, "maintenance task failed"),
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("received SIGINT, shutting down"),
        _ = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// Waits for every server task to finish, at most `timeout` in total.
pub(crate) async fn drain<T>(
    tasks: Vec<(&'static str, tokio::task::JoinHandle<T>)>,
    timeout: Duration,
) where
    T: Send + 'static,
{
    let deadline = tokio::time::Instant::now() + timeout;
    for (name, task) in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(deadline, task).await {
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(
                    server = name,
                    timeout_s = timeout.as_secs_f64(),
                    "in-flight requests did not finish in server.shutdown_timeout; aborting"
                );
                abort.abort();
            }
        }
    }
}

/// Closes every store (WAL writes made durable). BLOCKING work on a blocking thread.
pub(crate) async fn close_stores(state: &AppState) {
    let closing = state.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || closing.close_all()).await {
        tracing::error!(error = %e, "closing the stores failed");
    }
}
