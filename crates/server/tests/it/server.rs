//! [`TestServer`]: the real `sightline` binary on free loopback ports with its own data
//! directory, started and restarted like an operator would.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a start (WAL replay included) may take before the test fails.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long a SIGTERM shutdown may take.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// A running (or stopped) `sightline serve`. Killed on drop.
pub(crate) struct TestServer {
    child: Option<Child>,
    data_dir: tempfile::TempDir,
    /// Config file and logs of every start.
    work_dir: tempfile::TempDir,
    config_file: Option<PathBuf>,
    starts: usize,
    pub(crate) http: SocketAddr,
    pub(crate) otlp_grpc: SocketAddr,
    pub(crate) otlp_http: SocketAddr,
    pub(crate) client: reqwest::Client,
}

impl TestServer {
    /// Starts a server with the default configuration.
    pub(crate) async fn start() -> TestServer {
        TestServer::start_with_config(None).await
    }

    /// Starts a server with `yaml` as its config file (`--config`).
    pub(crate) async fn start_with_config(yaml: Option<&str>) -> TestServer {
        let data_dir = tempfile::tempdir().expect("create data dir");
        let work_dir = tempfile::tempdir().expect("create work dir");
        let config_file = yaml.map(|text| {
            let path = work_dir.path().join("sightline.yaml");
            std::fs::write(&path, text).expect("write config file");
            path
        });
        let unbound = "127.0.0.1:0".parse().expect("address");
        let mut server = TestServer {
            child: None,
            data_dir,
            work_dir,
            config_file,
            starts: 0,
            http: unbound,
            otlp_grpc: unbound,
            otlp_http: unbound,
            client: test_client_builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        };
        server.spawn_and_wait_ready().await;
        server
    }

    /// `http://<listen>/<path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// `http://<otlp http listen>/<path>`.
    pub(crate) fn otlp_http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.otlp_http, path)
    }

    /// Everything the server printed in every start so far.
    pub(crate) fn logs(&self) -> String {
        let mut logs = String::new();
        for start in 1..=self.starts {
            let path = self.log_path(start);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            logs.push_str(&format!(
                "----- start {start} ({}) -----\n{text}",
                path.display()
            ));
        }
        logs
    }

    fn log_path(&self, start: usize) -> PathBuf {
        self.work_dir.path().join(format!("sightline-{start}.log"))
    }

    /// SIGKILL, as a crash or the OOM killer would; waits until the process is gone.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the server");
            child.wait().expect("reap the server");
        }
    }

    /// SIGTERM, a clean shutdown; returns the exit status once the process is gone.
    pub(crate) async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "sending SIGTERM failed");
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("poll server exit") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not exit within {SHUTDOWN_DEADLINE:?} of SIGTERM\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Starts the binary again on the same data directory (new ports) and waits until
    /// it is ready. The previous process must be stopped.
    pub(crate) async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server before restarting it");
        self.spawn_and_wait_ready().await;
    }

    async fn spawn_and_wait_ready(&mut self) {
        let [http, otlp_grpc, otlp_http] = free_loopback_addresses();
        self.http = http;
        self.otlp_grpc = otlp_grpc;
        self.otlp_http = otlp_http;
        self.starts += 1;
        let log = File::create(self.log_path(self.starts)).expect("create log file");
        let mut command = Command::new(binary_under_test());
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .arg("--listen")
            .arg(http.to_string())
            .arg("--otlp-grpc-listen")
            .arg(otlp_grpc.to_string())
            .arg("--otlp-http-listen")
            .arg(otlp_http.to_string())
            .arg("--enable-admin-api");
        if let Some(config_file) = &self.config_file {
            command.arg("--config").arg(config_file);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log));
        self.child = Some(command.spawn().expect("spawn the sightline binary"));
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_DEADLINE;
        let url = self.url("/-/ready");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().expect("poll server")
            {
                self.child = None;
                panic!(
                    "server exited before it was ready: {status}\n{}",
                    self.logs()
                );
            }
            let ready = self
                .client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map(|response| response.status() == reqwest::StatusCode::OK)
                .unwrap_or(false);
            if ready {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "server not ready within {READY_DEADLINE:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() && std::env::var_os("SIGHTLINE_TEST_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Three distinct free loopback ports: bound to port 0 together, then released.
fn free_loopback_addresses() -> [SocketAddr; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    let address = |i: usize| listeners[i].local_addr().expect("local address");
    [address(0), address(1), address(2)]
}

/// The `sightline` binary cargo built for this test run, pinned by a hard link: the
/// target directory is shared, and a concurrent `cargo build` elsewhere in the workspace
/// would otherwise swap the binary between two starts of one test. Links left by
/// earlier runs whose process is gone are removed.
pub(crate) fn binary_under_test() -> PathBuf {
    static PINNED: OnceLock<PathBuf> = OnceLock::new();
    PINNED
        .get_or_init(|| {
            let built = PathBuf::from(env!("CARGO_BIN_EXE_sightline"));
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            remove_stale_pins(&dir);
            let pinned = dir.join(format!("sightline-it-{}", std::process::id()));
            let _ = std::fs::remove_file(&pinned);
            match std::fs::hard_link(&built, &pinned) {
                Ok(()) => pinned,
                Err(_) => built,
            }
        })
        .clone()
}

fn remove_stale_pins(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("sightline-it-"))
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: kill(2) with signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// reqwest's builder after installing the process' TLS provider (reqwest is built with
/// rustls and no provider of its own).
pub(crate) fn test_client_builder() -> reqwest::ClientBuilder {
    sightline_scrape::install_tls_provider();
    reqwest::Client::builder()
}
