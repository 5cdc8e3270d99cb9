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
use crate::inflight::DecodeBudget;
use crate::limits::IngestionRateLimiter;
use crate::query_runner::QueryRunner;
use crate::self_metrics::SelfMetrics;
use crate::tenant::reserved_reason;

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
    /// Bytes of decompressed request bodies being decoded (`server.max_inflight_decompressed_bytes`).
    decode_budget: DecodeBudget,
    /// Decoding buffers that remote_write requests reuse.
    remote_write_scratch: sightline_ingest::remote_write::ScratchPool,
    /// PromQL evaluation slots and limits (`query:`).
    query_runner: QueryRunner,
    /// Set when a store's write-ahead log failed: `/-/ready` answers 503 with it.
    storage_failure: Mutex<Option<String>>,
    /// Decompressed block data kept for queries, shared by every tenant's store
    /// (`storage.metrics.block_cache_bytes`).
    group_cache: Arc<sightline_tsdb::GroupCache>,
    /// Held for the life of the process; dropping it releases the lock.
    _data_dir_lock: DataDirLock,
}

/// remote_write decoding buffers kept for reuse (more requests in flight allocate
/// their own). Each holds a request's decompressed body, about 400 KB at Prometheus'
/// 2,000 samples per send. On the bench's load (2 cores, 8 requests in flight),
/// keeping 4 instead of 2 saved 3-4% of the CPU and cost about 12 bytes more RSS per
/// active series; memory is the tighter budget.
const REMOTE_WRITE_SCRATCH_POOLED: usize = 2;
/// A scratch that grew past this (a request far above Prometheus' 2,000 samples per
/// send) is freed rather than kept.
const REMOTE_WRITE_SCRATCH_MAX_BYTES: usize = 8 * 1024 * 1024;

impl AppState {
    /// State over `config.data_dir`, which must already be locked by `lock`. No store
    /// is open yet: call [`AppState::open_existing_tenants`].
    pub(crate) fn new(config: Config, lock: DataDirLock) -> AppState {
        let group_cache = Arc::new(sightline_tsdb::GroupCache::new(
            usize::try_from(config.storage.metrics.block_cache_bytes.0).unwrap_or(usize::MAX),
        ));
        let rate_limiter = IngestionRateLimiter::new(
            config.limits.ingestion_rate_samples_per_second,
            config.limits.ingestion_burst_samples,
        );
        let decode_budget = DecodeBudget::new(config.server.max_inflight_decompressed_bytes.0);
        let query_runner = QueryRunner::new(&config.query);
        AppState {
            inner: Arc::new(StateInner {
                decode_budget,
                remote_write_scratch: sightline_ingest::remote_write::ScratchPool::new(
                    REMOTE_WRITE_SCRATCH_POOLED,
                    REMOTE_WRITE_SCRATCH_MAX_BYTES,
                ),
                query_runner,
                storage_failure: Mutex::new(None),
                config,
                tenants: RwLock::new(HashMap::new()),
                create_lock: Mutex::new(()),
                ready: AtomicBool::new(false),
                shutting_down: AtomicBool::new(false),
                self_metrics: SelfMetrics::default(),
                rate_limiter,
                group_cache,
                _data_dir_lock: lock,
            }),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Decompressed block data kept for queries, shared by every tenant's store.
    pub(crate) fn group_cache(&self) -> &sightline_tsdb::GroupCache {
        &self.inner.group_cache
    }

    /// Options of a tenant's metrics store.
    fn db_options(&self) -> sightline_tsdb::DbOptions {
        self.config()
            .db_options(Arc::clone(&self.inner.group_cache))
    }

    pub(crate) fn self_metrics(&self) -> &SelfMetrics {
        &self.inner.self_metrics
    }

    pub(crate) fn rate_limiter(&self) -> &IngestionRateLimiter {
        &self.inner.rate_limiter
    }

    /// Decoding buffers for remote_write requests to reuse.
    pub(crate) fn remote_write_scratch(&self) -> &sightline_ingest::remote_write::ScratchPool {
        &self.inner.remote_write_scratch
    }

    pub(crate) fn decode_budget(&self) -> &DecodeBudget {
        &self.inner.decode_budget
    }

    pub(crate) fn query_runner(&self) -> &QueryRunner {
        &self.inner.query_runner
    }

    /// True once start-up replay finished and until shutdown begins, unless a store's
    /// write-ahead log failed.
    #[cfg(test)]
    pub(crate) fn is_ready(&self) -> bool {
        self.not_ready_reason().is_none()
    }

    /// Why `/-/ready` answers 503, or `None` when ready.
    pub(crate) fn not_ready_reason(&self) -> Option<String> {
        if self.is_shutting_down() {
            return Some("shutting down".to_string());
        }
        if !self.inner.ready.load(Ordering::Acquire) {
            return Some("replaying write-ahead logs".to_string());
        }
        self.inner.storage_failure.lock().clone()
    }

    /// Records that `tenant`'s store failed to write its WAL: logged at error level,
    /// and the server reports not ready (the first failure is kept) until restarted,
    /// so an orchestrator can take it out of rotation.
    pub(crate) fn mark_storage_failed(&self, tenant: &TenantId, error: &str) {
        tracing::error!(tenant = %tenant, error = %error, "write-ahead log failed; marking server not ready");
        let mut failure = self.inner.storage_failure.lock();
        if failure.is_none() {
            *failure = Some(format!(
                "the write-ahead log of tenant {tenant} failed: {error}; restart the server"
            ));
        }
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

    /// The metrics store of `tenant`, created on first write: 400 for a reserved name,
    /// 429 naming `limits.max_tenants` when the server has that many tenants. Opening a new store
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
        if let Some(reason) = reserved_reason(tenant) {
            return Err(ApiError::bad_data(format!(
                "invalid tenant id {:?}: {reason}",
                tenant.as_str()
            )));
        }
        let max_tenants = self.config().limits.max_tenants;
        let tenants = self.inner.tenants.read().len();
        if tenants >= max_tenants {
            return Err(ApiError::new(
                ErrorKind::RateLimited,
                format!(
                    "cannot create tenant {tenant}: this server already has {tenants} tenants; \
                     limit is limits.max_tenants={max_tenants}"
                ),
            ));
        }
        let dir = self.tenant_metrics_dir(tenant);
        let db = Db::open(&dir, self.db_options()).map_err(|e| {
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
            if reserved_reason(&tenant).is_some() {
                continue;
            }
            let dir = entry.path().join(METRICS_DIR);
            if !dir.is_dir() {
                continue;
            }
            let started = std::time::Instant::now();
            let db = Db::open(&dir, self.db_options()).map_err(|e| {
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

    fn ready_state(change: impl FnOnce(&mut Config)) -> (tempfile::TempDir, AppState) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.storage.wal.fsync = crate::config::FsyncMode::None;
        change(&mut config);
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let state = AppState::new(config, lock);
        state.open_existing_tenants().unwrap();
        (dir, state)
    }

    #[test]
    fn tenants_are_bounded_by_max_tenants() {
        let (_dir, state) = ready_state(|c| c.limits.max_tenants = 2);
        let t = |name: &str| TenantId::parse(name).unwrap();
        state.metrics_db_for_write(&t("a")).unwrap();
        state.metrics_db_for_write(&t("b")).unwrap();
        // Existing tenants keep working.
        state.metrics_db_for_write(&t("a")).unwrap();
        let err = state.metrics_db_for_write(&t("c")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert!(
            err.message.contains("limits.max_tenants=2"),
            "{}",
            err.message
        );
        assert!(state.existing_metrics_db(&t("c")).is_none());
        assert!(!state.config().data_dir.join("c").exists());
    }

    #[test]
    fn default_max_tenants_is_named_in_the_message() {
        assert_eq!(Config::default().limits.max_tenants, 1000);
    }

    #[test]
    fn reserved_tenants_never_get_a_store() {
        let (_dir, state) = ready_state(|_| {});
        for name in ["LOCK", ".x"] {
            let err = state
                .metrics_db_for_write(&TenantId::parse(name).unwrap())
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadData, "{name}");
        }
    }

    #[test]
    fn wal_failure_makes_the_server_not_ready() {
        let (_dir, state) = ready_state(|_| {});
        assert!(state.is_ready());
        state.mark_storage_failed(&TenantId::default_tenant(), "disk full");
        assert!(!state.is_ready());
        let reason = state.not_ready_reason().unwrap();
        assert!(reason.contains("disk full"), "{reason}");
        assert!(reason.contains("default"), "{reason}");
        // The first failure is kept.
        state.mark_storage_failed(&TenantId::default_tenant(), "other");
        assert!(state.not_ready_reason().unwrap().contains("disk full"));
    }
}
