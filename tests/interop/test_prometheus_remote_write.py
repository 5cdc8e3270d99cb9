"""Real Prometheus scrapes node-exporter, itself and sightline, and remote-writes everything to
sightline (tenant `default`). Sightline's Prometheus HTTP API must then answer like
Prometheus' own for the same data.
"""

from __future__ import annotations

import pytest
import requests

from interop_util import diff_vectors, fmt_labels, series_key, wait_for_match

REMOTE_WRITE_LAG_TIMEOUT = 60.0

SELECTORS = [
    "up",
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "prometheus_http_requests_total",
    '{job="node"}',
    'node_cpu_seconds_total{mode="idle"}',
    'up{job=~"node|prom.*"}',
    'prometheus_http_requests_total{handler!="/metrics",code="200"}',
    "node_load1 offset 2s",
]


@pytest.mark.parametrize("selector", SELECTORS)
def test_instant_query_matches_prometheus(sightline, scraped_prometheus, eval_time, selector):
    expected = scraped_prometheus.api.query(selector, eval_time)
    assert expected, f"prometheus has no result for {selector!r} at {eval_time}: the fixture is broken"
    ours = sightline.api()
    wait_for_match(
        lambda: diff_vectors(expected, ours.query(selector, eval_time)),
        REMOTE_WRITE_LAG_TIMEOUT,
        f"query {selector!r} at time={eval_time:.3f} ({len(expected)} series in prometheus)",
    )


def test_prometheus_scrapes_sightline_metrics(scraped_prometheus, eval_time):
    """Sightline's own /metrics is valid exposition format (Prometheus would set up=0 otherwise)."""
    up = scraped_prometheus.api.query('up{job="sightline"}', eval_time)
    assert [s["value"][1] for s in up] == ["1"], f"up{{job=\"sightline\"}} at {eval_time}: {up}"


def _label_sets(series: list[dict[str, str]]) -> set:
    return {series_key(s) for s in series}


def _subset_problems(what: str, prom_before: set, ours: set, prom_after: set) -> list[str]:
    """Ours must hold all Prometheus had before we asked, and nothing Prometheus lacks after."""
    problems = [f"{what}: missing in sightline: {fmt(x)}" for x in sorted(prom_before - ours)[:15]]
    problems += [f"{what}: extra in sightline: {fmt(x)}" for x in sorted(ours - prom_after)[:15]]
    return problems


def fmt(item) -> str:
    return fmt_labels(item) if isinstance(item, tuple) else repr(item)


@pytest.mark.parametrize("matcher", ["up", '{job="node",__name__=~"node_memory_.*"}'])
def test_series_match_prometheus(sightline, scraped_prometheus, matcher):
    ours = sightline.api()

    def check() -> list[str]:
        before = _label_sets(scraped_prometheus.api.get_json("/api/v1/series", {"match[]": matcher}))
        got = _label_sets(ours.get_json("/api/v1/series", {"match[]": matcher}))
        after = _label_sets(scraped_prometheus.api.get_json("/api/v1/series", {"match[]": matcher}))
        if not before:
            return [f"prometheus has no series for {matcher!r}"]
        return _subset_problems(f"/api/v1/series?match[]={matcher}", before, got, after)

    wait_for_match(check, REMOTE_WRITE_LAG_TIMEOUT, f"/api/v1/series?match[]={matcher}")


@pytest.mark.parametrize(
    "path",
    ["/api/v1/labels", "/api/v1/label/job/values", "/api/v1/label/__name__/values", "/api/v1/label/mode/values"],
)
def test_label_apis_match_prometheus(sightline, scraped_prometheus, path):
    ours = sightline.api()

    def check() -> list[str]:
        before = set(scraped_prometheus.api.get_json(path))
        got_list = ours.get_json(path)
        after = set(scraped_prometheus.api.get_json(path))
        problems = _subset_problems(path, before, set(got_list), after)
        if got_list != sorted(got_list):
            problems.append(f"{path}: not sorted like prometheus' answer: {got_list[:20]}")
        return problems

    wait_for_match(check, REMOTE_WRITE_LAG_TIMEOUT, path)


@pytest.mark.parametrize("metric", ["node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "prometheus_http_requests_total"])
def test_metadata_matches_prometheus(sightline, scraped_prometheus, metric):
    """Prometheus sends metric metadata over remote_write (every 2s in our config)."""
    expected = scraped_prometheus.api.get_json("/api/v1/metadata", {"metric": metric})
    assert metric in expected, f"prometheus has no metadata for {metric}: {expected}"
    want = [{"type": m["type"], "help": m["help"]} for m in expected[metric]]
    ours = sightline.api()

    def check() -> list[str]:
        got = ours.get_json("/api/v1/metadata", {"metric": metric})
        have = [{"type": m.get("type"), "help": m.get("help")} for m in got.get(metric, [])]
        return [] if have == want else [f"metadata for {metric}: prometheus {want}, sightline {have}"]

    wait_for_match(check, REMOTE_WRITE_LAG_TIMEOUT, f"/api/v1/metadata?metric={metric}")


def test_other_tenant_sees_nothing(sightline, scraped_prometheus, eval_time):
    """Prometheus writes without X-Scope-OrgID (tenant `default`); another tenant must not see it."""
    wait_for_match(
        lambda: [] if sightline.api().query("up", eval_time) else ["no `up` in tenant default yet"],
        REMOTE_WRITE_LAG_TIMEOUT,
        "up in tenant default",
    )
    leaked = sightline.api(tenant="interop-empty").query("up", eval_time)
    assert leaked == [], f"tenant interop-empty sees tenant default's data: {leaked[:3]}"
    assert sightline.api(tenant="interop-empty").get_json("/api/v1/series", {"match[]": "up"}) == []


@pytest.mark.parametrize("selector", ["up", '{job="node"}'])
def test_query_matches_after_flush_to_blocks(sightline, scraped_prometheus, eval_time, selector):
    """The same answer once the head has been cut into on-disk blocks (admin flush)."""
    expected = scraped_prometheus.api.query(selector, eval_time)
    ours = sightline.api()
    # First wait until the data has arrived, so the flush really moves it to blocks.
    wait_for_match(
        lambda: diff_vectors(expected, ours.query(selector, eval_time)),
        REMOTE_WRITE_LAG_TIMEOUT,
        f"query {selector!r} before flush",
    )
    resp = requests.post(f"{sightline.base_url}/api/sightline/v1/admin/flush", timeout=60)
    assert resp.status_code == 200, f"admin flush: HTTP {resp.status_code}: {resp.text[:500]}"
    problems = diff_vectors(expected, ours.query(selector, eval_time))
    assert not problems, f"query {selector!r} at {eval_time:.3f} after flush:\n  " + "\n  ".join(problems)


# Kept last in this file: it restarts the session's sightline (pytest runs tests in file order).
@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_data_survives_restart(sightline, scraped_prometheus, eval_time, crash):
    """After a clean stop, or a SIGKILL, the restarted server (WAL replay) answers the same."""
    selector = '{job="node"}'
    expected = scraped_prometheus.api.query(selector, eval_time)
    ours = sightline.api()
    wait_for_match(
        lambda: diff_vectors(expected, ours.query(selector, eval_time)),
        REMOTE_WRITE_LAG_TIMEOUT,
        f"query {selector!r} before restart",
    )
    sightline.restart(crash=crash)
    problems = diff_vectors(expected, sightline.api().query(selector, eval_time))
    how = "SIGKILL" if crash else "SIGTERM"
    assert not problems, f"query {selector!r} at {eval_time:.3f} after {how} and restart:\n  " + "\n  ".join(problems)
