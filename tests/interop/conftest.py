"""Fixtures of the interop suite: real sightline, Prometheus and node-exporter processes.

All of them listen on free 127.0.0.1 ports only, keep their state in a temporary directory,
are started once per session and killed at teardown. Readiness is always a polled condition
with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from interop_util import (
    CHILDREN,
    LOOPBACK,
    Child,
    PromApi,
    WaitTimeout,
    env_without_prefix,
    free_port,
    http_ok,
    tcp_open,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
START_ATTEMPTS = 3  # a port picked by free_port() can be taken by someone else before we bind it
READY_TIMEOUT = 60.0
PROMETHEUS_BIN = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")
NODE_EXPORTER_BIN = os.environ.get("NODE_EXPORTER_BIN", "/usr/bin/prometheus-node-exporter")
SCRAPE_INTERVAL = "1s"
MIN_SCRAPES = 5  # per job before tests pick an evaluation time


def _start_with_retry(name, start):
    """Calls `start()` (which starts a child and waits for it) up to START_ATTEMPTS times."""
    last_error = None
    for _ in range(START_ATTEMPTS):
        try:
            return start()
        except WaitTimeout as err:
            last_error = err
    raise AssertionError(f"{name} did not start after {START_ATTEMPTS} attempts: {last_error}")


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("interop")


@dataclass
class Sightline:
    """The sightline process under test, on free loopback ports with its own data dir."""

    binary: Path
    work_dir: Path
    port: int
    otlp_grpc_port: int
    otlp_http_port: int
    data_dir: Path
    child: Child | None = None
    config_path: Path | None = None  # passed as --config when set

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"{LOOPBACK}:{self.otlp_grpc_port}"

    @property
    def otlp_http_base(self) -> str:
        return f"http://{LOOPBACK}:{self.otlp_http_port}"

    def api(self, tenant: str | None = None) -> PromApi:
        return PromApi(self.base_url, tenant=tenant)

    def launch(self) -> None:
        """Starts the process and waits until it is ready and every listener accepts."""
        child = Child(
            "sightline",
            [
                str(self.binary),
                "serve",
                "--data-dir", str(self.data_dir),
                "--listen", f"{LOOPBACK}:{self.port}",
                "--otlp-grpc-listen", f"{LOOPBACK}:{self.otlp_grpc_port}",
                "--otlp-http-listen", f"{LOOPBACK}:{self.otlp_http_port}",
                "--log-format", "text",
                "--enable-admin-api",  # the flush test uses /api/sightline/v1/admin/flush
                *(["--config", str(self.config_path)] if self.config_path else []),
            ],
            self.work_dir,
            # SIGHTLINE_* variables would override the config (clap `env`): only flags count here.
            env=env_without_prefix("SIGHTLINE_", {"RUST_BACKTRACE": "1", "NO_COLOR": "1"}),
        )
        self.child = child
        try:
            wait_until(lambda: http_ok(f"{self.base_url}/-/ready"), READY_TIMEOUT, "sightline /-/ready", child=child)
            wait_until(lambda: tcp_open(self.otlp_grpc_port), READY_TIMEOUT, "sightline OTLP gRPC port", child=child)
            wait_until(lambda: tcp_open(self.otlp_http_port), READY_TIMEOUT, "sightline OTLP HTTP port", child=child)
        except WaitTimeout:
            child.stop()
            raise

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()

    def restart(self, crash: bool) -> None:
        """Stops the process (SIGKILL if `crash`, else SIGTERM) and starts it again on the
        same ports and data dir."""
        assert self.child is not None
        if crash:
            self.child.kill()
        self.child.stop()
        self.launch()


def _sightline_bin() -> Path:
    configured = os.environ.get("SIGHTLINE_BIN")
    # Resolved now: children run with their own working directory.
    path = Path(configured).resolve() if configured else REPO_ROOT / "target" / "debug" / "sightline"
    if not path.is_file():
        pytest.fail(f"sightline binary not found at {path}: build it (cargo build -p sightline-server) or set SIGHTLINE_BIN")
    return path


@pytest.fixture(scope="session")
def sightline(work_dir) -> Sightline:
    server = start_sightline(work_dir, "sightline")
    yield server
    server.stop()


def start_sightline(work_dir: Path, name: str, config: dict | None = None) -> Sightline:
    """Starts a Sightline on free loopback ports with its own data dir (and `config`, if
    given, written as the config file), retrying on a port race; the caller stops it."""
    binary = _sightline_bin()
    attempt = 0

    def start() -> Sightline:
        nonlocal attempt
        attempt += 1
        data_dir = work_dir / f"{name}-data-{attempt}"
        data_dir.mkdir()
        config_path = None
        if config is not None:
            config_path = work_dir / f"{name}-{attempt}.yaml"
            # JSON is YAML; no YAML library needed.
            config_path.write_text(json.dumps(config, indent=2))
        server = Sightline(binary, work_dir, free_port(), free_port(), free_port(), data_dir, config_path=config_path)
        server.launch()
        return server

    return _start_with_retry(name, start)


@dataclass
class NodeExporter:
    child: Child
    port: int


@pytest.fixture(scope="session")
def node_exporter(work_dir) -> NodeExporter:
    if shutil.which(NODE_EXPORTER_BIN) is None:
        pytest.fail(f"{NODE_EXPORTER_BIN} not found: run scripts/interop.sh (it installs prometheus-node-exporter)")

    def start() -> NodeExporter:
        port = free_port()
        child = Child(
            "node-exporter",
            [
                NODE_EXPORTER_BIN,
                f"--web.listen-address={LOOPBACK}:{port}",
                # A handful of collectors keeps each scrape light and the series count stable.
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.loadavg",
                "--collector.stat",
                "--collector.time",
                "--collector.uname",
            ],
            work_dir,
        )
        try:
            wait_until(lambda: http_ok(f"http://{LOOPBACK}:{port}/metrics"), READY_TIMEOUT, "node-exporter /metrics", child=child)
        except WaitTimeout:
            child.stop()
            raise
        return NodeExporter(child, port)

    exporter = _start_with_retry("node-exporter", start)
    yield exporter
    exporter.child.stop()


@dataclass
class Prometheus:
    child: Child
    port: int
    api: PromApi


def prometheus_config(own_port: int, node_port: int, sightline_port: int) -> dict:
    def target(job: str, port: int) -> dict:
        return {"job_name": job, "static_configs": [{"targets": [f"{LOOPBACK}:{port}"]}]}

    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL, "evaluation_interval": "15s"},
        "scrape_configs": [
            target("prometheus", own_port),
            target("node", node_port),
            target("sightline", sightline_port),
        ],
        "remote_write": [
            {
                "url": f"http://{LOOPBACK}:{sightline_port}/api/v1/write",
                "queue_config": {"batch_send_deadline": "1s", "min_backoff": "100ms", "max_backoff": "1s"},
                "metadata_config": {"send": True, "send_interval": "2s"},
            }
        ],
    }


def start_prometheus(work_dir: Path, name: str, make_config, extra_flags: tuple[str, ...] = ()) -> Prometheus:
    """Starts Prometheus on a free loopback port with `make_config(port)` as its config (a
    dict) and its own data dir, and waits until it is ready."""
    if shutil.which(PROMETHEUS_BIN) is None:
        pytest.fail(f"{PROMETHEUS_BIN} not found: run scripts/interop.sh (it installs prometheus)")
    attempt = 0

    def start() -> Prometheus:
        nonlocal attempt
        attempt += 1
        port = free_port()
        prom_dir = work_dir / f"{name}-{attempt}"
        prom_dir.mkdir()
        config_path = prom_dir / "prometheus.yml"
        # JSON is YAML; no YAML library needed.
        config_path.write_text(json.dumps(make_config(port), indent=2))
        child = Child(
            name,
            [
                PROMETHEUS_BIN,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={prom_dir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--log.level=info",
                *extra_flags,
            ],
            work_dir,
        )
        try:
            wait_until(lambda: http_ok(f"http://{LOOPBACK}:{port}/-/ready"), READY_TIMEOUT, f"{name} /-/ready", child=child)
        except WaitTimeout:
            child.stop()
            raise
        return Prometheus(child, port, PromApi(f"http://{LOOPBACK}:{port}"))

    return _start_with_retry(name, start)


@pytest.fixture(scope="session")
def prometheus(work_dir, sightline, node_exporter) -> Prometheus:
    prom = start_prometheus(
        work_dir, "prometheus", lambda port: prometheus_config(port, node_exporter.port, sightline.port)
    )
    yield prom
    prom.child.stop()


@pytest.fixture(scope="session")
def start_receiving_prometheus(work_dir):
    """Starts Prometheus instances that scrape nothing and take remote_write
    (`start_receiving_prometheus(name)`); all are stopped at the end of the session."""
    started: list[Prometheus] = []

    def start(name: str) -> Prometheus:
        # An empty config: defaults everywhere (evaluation_interval 1m is also the default
        # step of subqueries).
        prom = start_prometheus(work_dir, name, lambda port: {}, ("--web.enable-remote-write-receiver",))
        started.append(prom)
        return prom

    yield start
    for prom in started:
        prom.child.stop()


@pytest.fixture(scope="session")
def scraped_prometheus(prometheus) -> Prometheus:
    """Prometheus after it has scraped every job MIN_SCRAPES times."""

    def enough_scrapes() -> bool:
        counts = prometheus.api.query("count_over_time(up[5m])")
        by_job = {s["metric"].get("job"): float(s["value"][1]) for s in counts}
        return all(by_job.get(job, 0) >= MIN_SCRAPES for job in ("prometheus", "node", "sightline"))

    wait_until(enough_scrapes, 60, f"{MIN_SCRAPES} scrapes of each job", interval=0.5, child=prometheus.child)
    return prometheus


@pytest.fixture(scope="session")
def eval_time(scraped_prometheus) -> float:
    """A fixed evaluation time a couple of seconds in the past, when every job was up.

    Scrapes run every second with a one-second timeout, so on a busy machine one of
    them (Prometheus scraping itself included) can time out: the first recent instant
    at which all three jobs were up is taken, not whichever instant comes first.
    """
    want = [("node", "1"), ("prometheus", "1"), ("sightline", "1")]

    def instant_with_every_job_up() -> float | None:
        at = round(time.time() - 2.0, 3)
        up = scraped_prometheus.api.query("up", at)
        jobs = sorted((s["metric"].get("job"), s["value"][1]) for s in up)
        if jobs != want:
            raise AssertionError(f"prometheus' up at {at}: {jobs}, want {want}")
        return at

    return wait_until(
        instant_with_every_job_up,
        30,
        "an instant when every job was up",
        interval=0.5,
        child=scraped_prometheus.child,
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for child in list(CHILDREN):
            report.sections.append((f"{child.name} log tail ({child.log_path})", child.log_tail(60)))
