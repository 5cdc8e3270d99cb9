"""Helpers shared by the interop suite: free ports, child processes, polling, HTTP.

Every peer (sightline, Prometheus, node-exporter) runs as a direct child process bound to
127.0.0.1 only, with its own temporary directory, and dies with the test session.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

LOOPBACK = "127.0.0.1"

# Every child started by the suite, so failing tests can show the tails of their logs.
CHILDREN: list["Child"] = []


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel to SIGKILL it when pytest dies."""
    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:
        pass


class Child:
    """One peer process, its output in `<dir>/<name>.log`."""

    def __init__(self, name: str, argv: list[str], work_dir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.argv = argv
        self.log_path = work_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self._log.write(f"$ {' '.join(argv)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=work_dir,
            env=env,
            preexec_fn=_die_with_parent,
        )
        CHILDREN.append(self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would; call stop() afterwards to reap it."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, grace_seconds: float = 10.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=grace_seconds)
        self._log.close()
        if self in CHILDREN:
            CHILDREN.remove(self)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as err:
            return f"(cannot read {self.log_path}: {err})"
        return "\n".join(text.splitlines()[-lines:])


class WaitTimeout(AssertionError):
    pass


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.25,
    child: Child | None = None,
) -> Any:
    """Polls `condition` until it returns a truthy value or `timeout` seconds pass.

    Exceptions from `condition` count as "not yet" (a port not open yet); the last one is
    reported on timeout. If `child` exits meanwhile, fails at once with its log tail.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        if child is not None and not child.alive():
            raise WaitTimeout(
                f"{child.name} exited with {child.proc.returncode} while waiting for {what}\n"
                f"--- {child.name} log tail ---\n{child.log_tail()}"
            )
        try:
            value = condition()
            if value:
                return value
            last = value
        except Exception as err:  # noqa: BLE001 - anything means "not ready yet"
            last = err
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    return requests.get(url, timeout=2).status_code == 200


def tcp_open(port: int) -> bool:
    with socket.create_connection((LOOPBACK, port), timeout=1):
        return True


@dataclass
class PromApi:
    """A Prometheus-compatible HTTP API (Prometheus itself or sightline)."""

    base_url: str
    tenant: str | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def headers(self, tenant: str | None) -> dict[str, str]:
        tenant = tenant if tenant is not None else self.tenant
        return {"X-Scope-OrgID": tenant} if tenant is not None else {}

    def get_json(self, path: str, params: Any = None, tenant: str | None = None) -> Any:
        resp = self.session.get(self.base_url + path, params=params, headers=self.headers(tenant), timeout=10)
        try:
            body = resp.json()
        except ValueError as err:
            raise AssertionError(f"GET {path} {params}: HTTP {resp.status_code}, body is not JSON: {resp.text[:500]!r}") from err
        if resp.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"GET {path} {params}: HTTP {resp.status_code}: {json.dumps(body)[:1000]}")
        return body["data"]

    def query(self, expr: str, at: float | None = None, tenant: str | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.get_json("/api/v1/query", params, tenant)
        if data.get("resultType") != "vector":
            raise AssertionError(f"query {expr!r}: resultType {data.get('resultType')!r}, want 'vector'")
        return data["result"]


def series_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def fmt_labels(key: tuple[tuple[str, str], ...]) -> str:
    name = dict(key).get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in key if k != "__name__")
    return f"{name}{{{rest}}}"


def same_float(a: str, b: str) -> bool:
    fa, fb = float(a), float(b)
    return fa == fb or (math.isnan(fa) and math.isnan(fb))


def diff_vectors(expected: list[dict[str, Any]], got: list[dict[str, Any]], limit: int = 15) -> list[str]:
    """Field-by-field differences between two instant-vector results; empty when equal.

    Series are matched by their exact label set; timestamps must be equal and values equal
    both as numbers and as the strings Prometheus prints.
    """
    problems: list[str] = []
    want = {series_key(s["metric"]): s["value"] for s in expected}
    have: dict[tuple[tuple[str, str], ...], Any] = {}
    for s in got:
        key = series_key(s["metric"])
        if key in have:
            problems.append(f"duplicate series in sightline's answer: {fmt_labels(key)}")
        have[key] = s["value"]
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    for key in missing[:limit]:
        problems.append(f"missing in sightline: {fmt_labels(key)} = {want[key]}")
    if len(missing) > limit:
        problems.append(f"... and {len(missing) - limit} more missing")
    for key in extra[:limit]:
        problems.append(f"extra in sightline: {fmt_labels(key)} = {have[key]}")
    if len(extra) > limit:
        problems.append(f"... and {len(extra) - limit} more extra")
    mismatched = 0
    for key in sorted(set(want) & set(have)):
        (want_ts, want_val), (have_ts, have_val) = want[key], have[key]
        if float(want_ts) != float(have_ts) or not same_float(want_val, have_val) or want_val != have_val:
            mismatched += 1
            if mismatched <= limit:
                problems.append(
                    f"value differs: {fmt_labels(key)}: prometheus [{want_ts}, {want_val!r}] "
                    f"sightline [{have_ts}, {have_val!r}]"
                )
    if mismatched > limit:
        problems.append(f"... and {mismatched - limit} more values differ")
    return problems


def wait_for_match(check: Callable[[], list[str]], timeout: float, what: str, interval: float = 0.5) -> None:
    """Polls `check` (which returns a list of problems) until it returns none; fails with the last."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            problems = check()
        except AssertionError as err:
            problems = [str(err)]
        if not problems:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what}: still different after {timeout:.0f}s:\n  " + "\n  ".join(problems)
            )
        time.sleep(interval)


def env_without_prefix(prefix: str, extra: dict[str, str]) -> dict[str, str]:
    """This process' environment without variables starting with `prefix`, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefix)}
    env.update(extra)
    return env
