"""Scraping over https: Debian's node-exporter serves /metrics with a
certificate from a test CA (its --web.config.file TLS settings), and Sightline scrapes
it with `scheme: https`. With the CA as `tls_config.ca_file` the target is up; a job
that trusts only the system roots must refuse the certificate (up == 0), and
`insecure_skip_verify` must accept it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import NODE_EXPORTER_BIN, READY_TIMEOUT, Sightline, _start_with_retry, start_sightline
from interop_util import LOOPBACK, Child, free_port, tcp_open, wait_for_match, wait_until

MATCH_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def tls_files(work_dir) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key): a test CA and a server
    certificate it signed for 127.0.0.1. (rustls, like browsers, refuses a CA
    certificate used as a server's own, which a bare `openssl req -x509` makes.)"""
    if shutil.which("openssl") is None:
        pytest.fail("openssl not found (Debian package openssl)")
    ca, ca_key = work_dir / "tls-ca.pem", work_dir / "tls-ca-key.pem"
    csr, cert, key = work_dir / "tls-server.csr", work_dir / "tls-server.pem", work_dir / "tls-server-key.pem"
    extensions = work_dir / "tls-server.ext"
    extensions.write_text(
        f"subjectAltName=IP:{LOOPBACK},DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    for argv in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(ca_key), "-out", str(ca), "-subj", "/CN=sightline-interop-ca"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes",
         "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(extensions)],
    ):
        subprocess.run(argv, check=True, capture_output=True, cwd=work_dir)
    return ca, cert, key


@pytest.fixture(scope="module")
def tls_node_exporter(work_dir, tls_files):
    _, cert, key = tls_files
    web_config = work_dir / "node-exporter-web.yml"
    web_config.write_text(json.dumps({"tls_server_config": {"cert_file": str(cert), "key_file": str(key)}}))

    def start():
        port = free_port()
        child = Child(
            "node-exporter-tls",
            [
                NODE_EXPORTER_BIN,
                f"--web.listen-address={LOOPBACK}:{port}",
                f"--web.config.file={web_config}",
                "--collector.disable-defaults",
                "--collector.loadavg",
                "--collector.time",
            ],
            work_dir,
        )
        wait_until(lambda: tcp_open(port), READY_TIMEOUT, "node-exporter (TLS) port", child=child)
        return child, port

    child, port = _start_with_retry("node-exporter (TLS)", start)
    yield port
    child.stop()


@pytest.fixture(scope="module")
def tls_scraping_sightline(work_dir, tls_files, tls_node_exporter) -> Sightline:
    ca, _, _ = tls_files
    target = {"targets": [f"{LOOPBACK}:{tls_node_exporter}"]}
    jobs = [
        {"job_name": "trusted", "scheme": "https", "scrape_interval": "1s", "scrape_timeout": "1s",
         "tls_config": {"ca_file": str(ca)}, "static_configs": [target]},
        {"job_name": "system-roots", "scheme": "https", "scrape_interval": "1s", "scrape_timeout": "1s",
         "static_configs": [target]},
        {"job_name": "insecure", "scheme": "https", "scrape_interval": "1s", "scrape_timeout": "1s",
         "tls_config": {"insecure_skip_verify": True}, "static_configs": [target]},
    ]
    server = start_sightline(work_dir, "tls-sightline", {"scrape_configs": jobs})
    yield server
    server.stop()


def test_https_targets_are_verified_against_the_configured_ca(tls_scraping_sightline):
    api = tls_scraping_sightline.api()
    expected = {"trusted": "1", "system-roots": "0", "insecure": "1"}

    def check() -> list[str]:
        problems = []
        for job, want in expected.items():
            up = [s["value"][1] for s in api.query(f'up{{job="{job}"}}')]
            if up != [want]:
                problems.append(f'up{{job="{job}"}} is {up}, want [{want}]')
        loads = api.query('node_load1{job="trusted"}')
        if len(loads) != 1:
            problems.append(f'node_load1{{job="trusted"}} has {len(loads)} series, want 1')
        return problems

    wait_for_match(check, MATCH_TIMEOUT, "https scrapes: trusted and insecure up, system roots refused")
