"""Sightline and Prometheus 2.42 scrape the same node-exporter: both must store the same
metric names, and the same label names per metric, and both must see the target up.
Values are live and never compared.

Sightline here is a second instance of its own (the session one receives Prometheus'
remote_write, which already holds job="node" series), configured with a scrape job shaped
like Prometheus' own.
"""

from __future__ import annotations

import time

import pytest

from conftest import SCRAPE_INTERVAL, Sightline, start_sightline
from interop_util import LOOPBACK, wait_for_match

MATCH_TIMEOUT = 60.0
WINDOW_SECONDS = 30.0


@pytest.fixture(scope="module")
def scraping_sightline(work_dir, node_exporter) -> Sightline:
    job = {
        "job_name": "node",
        "scrape_interval": SCRAPE_INTERVAL,
        "scrape_timeout": SCRAPE_INTERVAL,
        "static_configs": [{"targets": [f"{LOOPBACK}:{node_exporter.port}"]}],
    }
    server = start_sightline(work_dir, "scraping-sightline", {"scrape_configs": [job]})
    yield server
    server.stop()


def _shapes(series: list[dict[str, str]]) -> dict[str, set[str]]:
    """Metric name -> label names of its series."""
    shapes: dict[str, set[str]] = {}
    for labels in series:
        name = labels.get("__name__", "")
        shapes.setdefault(name, set()).update(k for k in labels if k != "__name__")
    return shapes


def _node_series(api) -> list[dict[str, str]]:
    now = time.time()
    params = {"match[]": '{job="node"}', "start": f"{now - WINDOW_SECONDS:.3f}", "end": f"{now:.3f}"}
    return api.get_json("/api/v1/series", params)


def test_up_is_one_in_both(scraping_sightline, scraped_prometheus):
    def check() -> list[str]:
        problems = []
        for who, api in (("prometheus", scraped_prometheus.api), ("sightline", scraping_sightline.api())):
            up = api.query('up{job="node"}')
            values = [s["value"][1] for s in up]
            if values != ["1"]:
                problems.append(f"{who}: up{{job=\"node\"}} is {values}")
        return problems

    wait_for_match(check, MATCH_TIMEOUT, 'up{job="node"} == 1 in both')


def test_same_metric_and_label_names_as_prometheus(scraping_sightline, scraped_prometheus):
    ours_api = scraping_sightline.api()

    def check() -> list[str]:
        theirs = _shapes(_node_series(scraped_prometheus.api))
        ours = _shapes(_node_series(ours_api))
        problems = [f"metric {name!r} missing in sightline" for name in sorted(set(theirs) - set(ours))[:20]]
        problems += [f"metric {name!r} only in sightline" for name in sorted(set(ours) - set(theirs))[:20]]
        for name in sorted(set(theirs) & set(ours)):
            if theirs[name] != ours[name]:
                problems.append(f"{name}: label names {sorted(theirs[name])} in prometheus, {sorted(ours[name])} in sightline")
        if not theirs:
            problems.append("prometheus has no job=\"node\" series: the fixture is broken")
        return problems[:40]

    wait_for_match(check, MATCH_TIMEOUT, 'metric and label names of {job="node"}')
    report = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}
    assert report <= set(_shapes(_node_series(ours_api))), "report series"
