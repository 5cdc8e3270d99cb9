//! Shared server state: configuration, the per-tenant stores, limits and self-metrics.
//!
//! Each tenant's metrics store lives in `<data-dir>/<tenant>/metrics/`. It is opened at
//! start-up when its directory exists (WAL replay), or created on the tenant's first
//! write. Reads never create a tenant.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use sightline_model::TenantId;
use sightline_tsdb::Db;

use crate::config::Config;
use crate::error::{ApiError, ErrorKind};
use crate::limits::IngestionRateLimiter;
use crate::self_metrics::SelfMetrics;

/// Name of the metrics store's directory under a tenant's directory.
pub(crate) const METRICS_DIR: &str = "metrics";
/// Name of the lock file in the data dir.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Cheap to clone; every handler gets one.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) inner: Arc<StateInner>,
}

#[derive(Debug)]
pub(crate) struct StateInner {
    pub(crate) config: Config,
    tenants: RwLock<HashMap<TenantId, Arc<Db>>>,
    /// Serialises store creation so a tenant's directory is never opened twice.
    create_lock: Mutex<()>,
    /// True once every existing tenant's store is open.
    ready: AtomicBool,
    /// True once shutdown began: writes are refused, `/-/ready` answers 503.
    shutting_down: AtomicBool,
    self_metrics: SelfMetrics,
    rate_limiter: IngestionRateLimiter,
    /// Held for the life of the process; dropping it releases the lock.
    _data_dir_lock: DataDirLock,
}

impl AppState {
    /// State over `config.data_dir`, which must already be locked by `lock`. No store
    /// is open yet: call [`AppState::open_existing_tenants`].
    pub(crate) fn new(config: Config, lock: DataDirLock) -> AppState {
        let rate_limiter = IngestionRateLimiter::new(
            config.limits.ingestion_rate_samples_per_second,
            config.limits.ingestion_burst_samples,
        );
        AppState {
            inner: Arc::new(StateInner {
                config,
                tenants: RwLock::new(HashMap::new()),
                create_lock: Mutex::new(()),
                ready: AtomicBool::new(false),
                shutting_down: AtomicBool::new(false),
                self_metrics: SelfMetrics::default(),
                rate_limiter,
                _data_dir_lock: lock,
            }),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn self_metrics(&self) -> &SelfMetrics {
        &self.inner.self_metrics
    }

    pub(crate) fn rate_limiter(&self) -> &IngestionRateLimiter {
        &self.inner.rate_limiter
    }

    /// True once start-up replay finished and until shutdown begins.
    pub(crate) fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire) && !self.is_shutting_down()
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    pub(crate) fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
    }

    /// Refuses writes (503) while the stores are being opened or closed.
    pub(crate) fn check_accepting_writes(&self) -> Result<(), ApiError> {
        if self.is_shutting_down() {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                "server is shutting down",
            ));
        }
        if !self.inner.ready.load(Ordering::Acquire) {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                "server is starting: write-ahead logs are being replayed; retry shortly",
            ));
        }
        Ok(())
    }

    fn tenant_metrics_dir(&self, tenant: &TenantId) -> PathBuf {
        self.config()
            .data_dir
            .join(tenant.as_str())
            .join(METRICS_DIR)
    }

    /// The metrics store of `tenant` if it exists; reads never create a tenant.
    pub(crate) fn existing_metrics_db(&self, tenant: &TenantId) -> Option<Arc<Db>> {
        self.inner.tenants.read().get(tenant).map(Arc::clone)
    }

    /// The metrics store of `tenant`, created on first write. Opening a new store
    /// touches the disk: call it from blocking code (`spawn_blocking`) when possible.
    pub(crate) fn metrics_db_for_write(&self, tenant: &TenantId) -> Result<Arc<Db>, ApiError> {
        self.check_accepting_writes()?;
        if let Some(db) = self.existing_metrics_db(tenant) {
            return Ok(db);
        }
        let _creating = self.inner.create_lock.lock();
        if let Some(db) = self.existing_metrics_db(tenant) {
            return Ok(db);
        }
        let dir = self.tenant_metrics_dir(tenant);
        let db = Db::open(&dir, self.config().db_options()).map_err(|e| {
            ApiError::internal(format!(
                "cannot create the metrics store of tenant {tenant} in {}: {e}",
                dir.display()
            ))
        })?;
        tracing::info!(tenant = %tenant, dir = %dir.display(), "created metrics store");
        let db = Arc::new(db);
        self.inner
            .tenants
            .write()
            .insert(tenant.clone(), Arc::clone(&db));
        Ok(db)
    }

    /// Every tenant's metrics store that exists, sorted by tenant.
    pub(crate) fn all_metrics_dbs(&self) -> Vec<(TenantId, Arc<Db>)> {
        let mut dbs: Vec<(TenantId, Arc<Db>)> = self
            .inner
            .tenants
            .read()
            .iter()
            .map(|(tenant, db)| (tenant.clone(), Arc::clone(db)))
            .collect();
        dbs.sort_by(|a, b| a.0.cmp(&b.0));
        dbs
    }

    /// Opens the store of every tenant directory found in the data dir (replaying
    /// their WALs), then marks the server ready. BLOCKING.
    pub(crate) fn open_existing_tenants(&self) -> anyhow::Result<usize> {
        let data_dir = &self.config().data_dir;
        let entries = std::fs::read_dir(data_dir)
            .map_err(|e| anyhow::anyhow!("cannot list data dir {}: {e}", data_dir.display()))?;
        let mut opened = 0;
        for entry in entries {
            let entry = entry
                .map_err(|e| anyhow::anyhow!("cannot list data dir {}: {e}", data_dir.display()))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let Ok(tenant) = TenantId::parse(name) else {
                continue;
            };
            let dir = entry.path().join(METRICS_DIR);
            if !dir.is_dir() {
                continue;
            }
            let started = std::time::Instant::now();
            let db = Db::open(&dir, self.config().db_options()).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the metrics store of tenant {tenant} in {}: {e}",
                    dir.display()
                )
            })?;
            tracing::info!(
                tenant = %tenant,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "opened metrics store"
            );
            self.inner.tenants.write().insert(tenant, Arc::new(db));
            opened += 1;
        }
        self.inner.ready.store(true, Ordering::Release);
        Ok(opened)
    }

    /// Makes every store durable; called once at shutdown. BLOCKING.
    pub(crate) fn close_all(&self) {
        for (tenant, db) in self.all_metrics_dbs() {
            if let Err(e) = db.close() {
                tracing::error!(tenant = %tenant, error = %e, "closing metrics store failed");
            }
        }
    }
}

/// An exclusive `flock` on `<data-dir>/LOCK`, so two servers never share a data dir.
/// The kernel releases it when the process exits, even after a crash.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Creates the data dir if needed and takes its lock, or explains who holds it.
    pub(crate) fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", data_dir.display()))?;
        let path = data_dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open lock file {}: {e}", path.display()))?;
        lock_exclusive(&file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (process {holder})")
                };
                anyhow::anyhow!(
                    "data dir {} is in use by another sightline server{who}: \
                     only one server may use a data dir at a time",
                    data_dir.display()
                )
            } else {
                anyhow::anyhow!("cannot lock {}: {e}", path.display())
            }
        })?;
        // Best effort: the pid helps whoever finds the lock taken.
        let _ = file.set_len(0);
        let _ = std::io::Write::write_all(&mut &file, std::process::id().to_string().as_bytes());
        Ok(DataDirLock { _file: file, path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => std::io::ErrorKind::WouldBlock.into(),
        std::fs::TryLockError::Error(e) => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_same_dir_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DataDirLock::acquire(&data).unwrap();
        assert!(first.path().ends_with(LOCK_FILE));
        let err = DataDirLock::acquire(&data).unwrap_err().to_string();
        assert!(err.contains("in use by another sightline server"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        assert!(DataDirLock::acquire(&data).is_ok());
    }

    #[test]
    fn writes_wait_for_readiness() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let state = AppState::new(config, lock);
        let tenant = TenantId::default_tenant();
        let err = state.metrics_db_for_write(&tenant).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(!state.is_ready());
        assert_eq!(state.open_existing_tenants().unwrap(), 0);
        assert!(state.is_ready());
        state.begin_shutdown();
        assert!(!state.is_ready());
        assert_eq!(
            state.metrics_db_for_write(&tenant).unwrap_err().kind,
            ErrorKind::Unavailable
        );
    }
}
