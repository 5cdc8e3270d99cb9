//! `sightline`: the one binary. It wires configuration, the per-tenant stores, the
//! ingest receivers (remote_write, OTLP HTTP and gRPC, scraping), the Prometheus-compatible read
//! API and Sightline's own metrics together, and owns start-up and shutdown.
//!
//! This crate must never know a file format or a wire encoding itself: stores
//! (`sightline-tsdb`) own their files and adapters (`sightline-ingest`) own protocol
//! decoding. Errors reach clients only through [`error::ApiError`].
//!
//! Start-up order: lock the data dir, bind every listener (so `/-/healthy` answers at
//! once), then open every tenant's store (WAL replay) in the background; `/-/ready`
//! answers 200 and writes are accepted once that is done.

mod api;
mod cli;
mod config;
mod error;
mod http;
mod inflight;
mod ingest_http;
mod limits;
mod maintenance;
mod otlp_grpc;
mod query_runner;
mod query_store;
mod scrape;
mod self_metrics;
mod state;
mod tenant;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::{Cli, Command, ConfigCommand, ServeArgs};
use crate::config::{Config, LogFormat};
use crate::state::{AppState, DataDirLock};

fn main() -> ExitCode {
    tune_malloc();
    sightline_scrape::install_tls_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Config(ConfigCommand::Check { file }) => config_check(&file),
        Command::Config(ConfigCommand::Defaults) => print_defaults(),
    }
}

/// glibc's malloc, tuned for a long-running server whose memory per series is a
/// product figure. Measured with the bench load (75,000 series): RSS 129 MB with the
/// defaults, 94 MB with these settings, at the same ingest rate.
/// - At most two arenas (we run on few cores): glibc otherwise keeps one arena per
///   thread, each holding freed request buffers resident.
/// - A fixed 128 KiB mmap threshold: decompressed request bodies are larger, so they
///   come from mmap and go back to the OS when freed. The default threshold grows
///   after the first such free, and later bodies then stay in the heap.
/// - Trimming the heap top once 128 KiB is free at it.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const TUNING: [(libc::c_int, libc::c_int); 3] = [
            (libc::M_ARENA_MAX, 2),
            (libc::M_MMAP_THRESHOLD, 128 * 1024),
            (libc::M_TRIM_THRESHOLD, 128 * 1024),
        ];
        for (parameter, value) in TUNING {
            // SAFETY: mallopt only sets allocator parameters; it is called before any
            // other thread exists. A refused setting (return 0) keeps glibc's default.
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    }
}

/// `sightline config check FILE`: 0 when valid, 1 with the problems otherwise.
fn config_check(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn print_defaults() -> ExitCode {
    match serde_saphyr::to_string(&Config::default()) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot print the defaults: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sightline serve`.
fn serve(args: &ServeArgs) -> ExitCode {
    let config = match args.resolve_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = init_logging(config.server.log_format, &config.server.log_level) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sightline")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("invalid log level {level:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

async fn bind(address: SocketAddr, option: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({option})"))
}

/// Runs the server until SIGTERM/SIGINT, then shuts down gracefully.
async fn run(config: Config) -> anyhow::Result<()> {
    let lock = DataDirLock::acquire(&config.data_dir)?;
    tracing::debug!(lock = %lock.path().display(), "data dir locked");
    let server = config.server.clone();
    let main_listener = bind(server.listen, "server.listen / --listen").await?;
    let otlp_http_listener = bind(
        server.otlp_http_listen,
        "server.otlp_http_listen / --otlp-http-listen",
    )
    .await?;
    let otlp_grpc_listener = bind(
        server.otlp_grpc_listen,
        "server.otlp_grpc_listen / --otlp-grpc-listen",
    )
    .await?;

    let state = AppState::new(config, lock);
    let (stop_sender, stop_receiver) = watch::channel(false);
    let stopped = |mut receiver: watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stopping| *stopping).await;
    };

    let main_task = tokio::spawn(serve_http(
        "http",
        main_listener,
        http::main_router(state.clone()),
        stopped(stop_receiver.clone()),
    ));
    let otlp_http_task = tokio::spawn(serve_http(
        "otlp_http",
        otlp_http_listener,
        http::otlp_http_router(state.clone()),
        stopped(stop_receiver.clone()),
    ));
    let otlp_grpc_task = tokio::spawn({
        let state = state.clone();
        let stop = stopped(stop_receiver.clone());
        async move {
            if let Err(e) = otlp_grpc::serve(state, otlp_grpc_listener, stop).await {
                tracing::error!(error = %e, "otlp grpc server failed");
            }
        }
    });
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        http = %server.listen,
        otlp_grpc = %server.otlp_grpc_listen,
        otlp_http = %server.otlp_http_listen,
        data_dir = %state.config().data_dir.display(),
        "sightline listening"
    );

    let shutdown = maintenance::shutdown_signal();
    tokio::pin!(shutdown);
    let replay_state = state.clone();
    let started = std::time::Instant::now();
    let replay = tokio::task::spawn_blocking(move || replay_state.open_existing_tenants());
    let replay_result = tokio::select! {
        result = replay => Some(result),
        () = &mut shutdown => None,
    };
    let mut failure = None;
    match replay_result {
        Some(Ok(Ok(tenants))) => {
            tracing::info!(
                tenants,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "sightline ready"
            );
            let trim_task = tokio::spawn(maintenance::run_memory_trim(stop_receiver.clone()));
            let maintenance_task =
                tokio::spawn(maintenance::run_maintenance(state.clone(), stop_receiver));
            match scrape::start(&state) {
                Ok(scraping) => {
                    (&mut shutdown).await;
                    // Scrapes stop before the stores refuse writes.
                    if let Some(manager) = scraping {
                        manager.stop().await;
                    }
                }
                Err(e) => failure = Some(e),
            }
            state.begin_shutdown();
            let _ = stop_sender.send(true);
            let _ = maintenance_task.await;
            let _ = trim_task.await;
        }
        Some(Ok(Err(e))) => failure = Some(e),
        Some(Err(e)) => failure = Some(anyhow::anyhow!("start-up replay task failed: {e}")),
        None => {}
    }

    state.begin_shutdown();
    let _ = stop_sender.send(true);
    let timeout = state.config().server.shutdown_timeout.0;
    maintenance::drain(
        vec![
            ("http", main_task),
            ("otlp_http", otlp_http_task),
            ("otlp_grpc", otlp_grpc_task),
        ],
        timeout,
    )
    .await;
    maintenance::close_stores(&state).await;
    match failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("sightline stopped");
            Ok(())
        }
    }
}

/// Serves one axum router until `stop` resolves, then lets in-flight requests finish.
async fn serve_http(
    name: &'static str,
    listener: TcpListener,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(server = name, error = %e, "http server failed");
    }
}
