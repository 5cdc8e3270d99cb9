"""PromQL differential test: the same data written to Prometheus 2.42 and to sightline
over remote_write, then every query of `promql_cases.txt` asked of both, as instant
queries at four times and as two range queries, and the answers compared result by
result: resultType, label sets exactly, values within 1e-9 relative (NaN equals NaN,
infinities exact) and printed the same where they are the same float, timestamps
exactly, and order where the case says it matters. Documented 2.42 -> 3.x differences
(sightline follows 3.x) are notes in the cases file that the test checks.

The data set (`promql_data.py`) puts every sample 1.234 s after a whole 15 s step, and
every query time, range, offset and step here is whole seconds: no sample is ever on a
range or lookback boundary, where Prometheus 2.42 (closed) and 3.x (left-open, followed
by sightline) disagree by design.

`PROMQL_DIFF_PEER=prometheus` puts a second Prometheus 2.42 in sightline's place: that
run must be all-equal, which checks the cases (all valid in 2.42, deterministic), the
data writer and this harness.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from interop_util import PromApi, wait_until
from promql_data import SPAN_SECONDS, build_series, write_requests

CASES_FILE = Path(__file__).with_name("promql_cases.txt")
TENANT = "promql-diff"
RELATIVE_TOLERANCE = 1e-9
DIRECTIVE_SEPARATOR = " ;; "

# Query times, in seconds after the data set's start (see promql_data.py): the
# middle, inside the 10 minute gap of node_temperature_celsius{sensor="board"}, just
# after the last sample, and past the last sample's lookback. All are 17 s (53 s, 17.25 s)
# past a whole minute, so no subquery step but 1s puts an inner step on a subquery's
# range boundary. The range queries step every minute: over most of the data (across the
# counter resets, the gap and the staleness marker), and across the data's start.
# The API takes times as Unix seconds or RFC 3339 and steps as seconds or durations:
# the last instant query and the second range query use the other spellings, and the
# first instant query is at a fraction of a second.
INSTANT_OFFSETS = (3617.25, 4937, 7193, 7517)
RANGES = ((917, 7193, "60"), (-283, 1517, "1m"))
AFTER_LAST_SAMPLE_OFFSET = 7193


@dataclass(frozen=True)
class Case:
    line: int
    query: str
    ordered: bool = False
    instant_only: bool = False
    error: bool = False
    sightline_query: str | None = None
    differs: str | None = None

    @property
    def id(self) -> str:
        return f"L{self.line}:{self.query}"


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    cases = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        query, *directives = line.split(DIRECTIVE_SEPARATOR)
        options: dict[str, Any] = {}
        for directive in directives:
            directive = directive.strip()
            if directive == "ordered":
                options["ordered"] = True
            elif directive == "instant":
                options["instant_only"] = True
            elif directive == "error":
                options["error"] = True
            elif directive.startswith("sightline="):
                options["sightline_query"] = directive.removeprefix("sightline=").strip()
            elif directive.startswith("differs="):
                options["differs"] = directive.removeprefix("differs=").strip()
            else:
                raise ValueError(f"{path.name}:{number}: unknown directive {directive!r}")
        cases.append(Case(number, query.strip(), **options))
    return cases


CASES = load_cases()


def substitute(query: str, base: int) -> str:
    """`${base}`, `${base+N}`, `${base-N}` → the absolute time in seconds."""
    return re.sub(r"\$\{base([+-]\d+)?\}", lambda m: str(base + int(m.group(1) or 0)), query)


# --- comparison ------------------------------------------------------------------


def parse_float(text: str) -> float:
    return float(text)  # Prometheus writes NaN, +Inf, -Inf: all of them parse


def close(want: str, have: str) -> bool:
    a, b = parse_float(want), parse_float(have)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b))


def label_key(metric: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(metric.items()))


def show_labels(key: tuple[tuple[str, str], ...]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}"


def same_point(want: list, have: list) -> bool:
    """Same timestamp, values within the tolerance, and the same text where the values
    are the same float (Prometheus prints a value as Go's encoding/json would: the
    shortest digits that read back, ties to even, with an exponent below 1e-6 and from
    1e21)."""
    if float(want[0]) != float(have[0]) or not close(want[1], have[1]):
        return False
    same_float = parse_float(want[1]) == parse_float(have[1])
    return want[1] == have[1] or not same_float


def diff_results(want: dict[str, Any], have: dict[str, Any], ordered: bool) -> list[str]:
    """Differences between two `data` objects of the query API; empty when equal."""
    if want["resultType"] != have["resultType"]:
        return [f"resultType: prometheus {want['resultType']}, sightline {have['resultType']}"]
    kind = want["resultType"]
    if kind in ("scalar", "string"):
        a, b = want["result"], have["result"]
        equal = float(a[0]) == float(b[0]) and (a[1] == b[1] if kind == "string" else close(a[1], b[1]))
        return [] if equal else [f"{kind}: prometheus {a}, sightline {b}"]
    problems: list[str] = []
    indexed = []
    for who, result in (("prometheus", want["result"]), ("sightline", have["result"])):
        by_key = {}
        for series in result:
            key = label_key(series["metric"])
            if key in by_key:
                problems.append(f"{who} returned {show_labels(key)} twice")
            by_key[key] = series
        indexed.append(by_key)
    prom, ours = indexed
    for key in sorted(set(prom) - set(ours)):
        problems.append(f"missing in sightline: {show_labels(key)}")
    for key in sorted(set(ours) - set(prom)):
        problems.append(f"extra in sightline: {show_labels(key)}")
    for key in sorted(set(prom) & set(ours)):
        if kind == "vector":
            a, b = prom[key]["value"], ours[key]["value"]
            if not same_point(a, b):
                problems.append(f"{show_labels(key)}: prometheus {a}, sightline {b}")
            continue
        a_points, b_points = prom[key]["values"], ours[key]["values"]
        a_times = [float(p[0]) for p in a_points]
        b_times = [float(p[0]) for p in b_points]
        if a_times != b_times:
            only_a = sorted(set(a_times) - set(b_times))
            only_b = sorted(set(b_times) - set(a_times))
            problems.append(
                f"{show_labels(key)}: {len(a_points)} points in prometheus, {len(b_points)} in sightline; "
                f"only in prometheus at {only_a[:5]}, only in sightline at {only_b[:5]}"
            )
            continue
        bad = [(a, b) for a, b in zip(a_points, b_points) if not same_point(a, b)]
        if bad:
            shown = ", ".join(f"t={a[0]} prometheus {a[1]} sightline {b[1]}" for a, b in bad[:4])
            problems.append(f"{show_labels(key)}: {len(bad)} of {len(a_points)} values differ: {shown}")
    if ordered and kind == "vector" and not problems:
        # Ties may come in any order: the values' sequence is what must agree.
        a_values = [s["value"][1] for s in want["result"]]
        b_values = [s["value"][1] for s in have["result"]]
        if not all(close(a, b) for a, b in zip(a_values, b_values)):
            problems.append(f"order differs: prometheus values {a_values}, sightline values {b_values}")
    if ordered and kind == "matrix" and not problems:
        a_keys = [show_labels(label_key(s["metric"])) for s in want["result"]]
        b_keys = [show_labels(label_key(s["metric"])) for s in have["result"]]
        if a_keys != b_keys:
            problems.append(f"series order differs: prometheus {a_keys}, sightline {b_keys}")
    return problems


def brief(body: dict[str, Any], limit: int = 1500) -> str:
    text = json.dumps(body.get("data", body), sort_keys=True)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


Fetch = Callable[[str, dict[str, str]], dict[str, Any]]


def requests_of(case: Case, base: int) -> list[tuple[str, str, dict[str, str]]]:
    """(what, path, params) of every request a case makes, for the query as written."""
    out = []
    for number, offset in enumerate(INSTANT_OFFSETS):
        at = api_time(base + offset, rfc3339=number == len(INSTANT_OFFSETS) - 1)
        out.append((f"instant query at time={at}", "/api/v1/query", {"time": at}))
    if not case.instant_only:
        for number, (start_offset, end_offset, step) in enumerate(RANGES):
            start = api_time(base + start_offset, rfc3339=number == len(RANGES) - 1)
            end = api_time(base + end_offset, rfc3339=number == len(RANGES) - 1)
            params = {"start": start, "end": end, "step": step}
            out.append((f"range query start={start} end={end} step={step}", "/api/v1/query_range", params))
    return out


def api_time(seconds: float, rfc3339: bool) -> str:
    if not rfc3339:
        return f"{seconds:.3f}".rstrip("0").rstrip(".")
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def without_name(body: dict[str, Any]) -> dict[str, Any]:
    """A query API answer with `__name__` removed from every series."""
    if body.get("status") != "success" or body["data"]["resultType"] not in ("vector", "matrix"):
        return body
    result = [{**series, "metric": {k: v for k, v in series["metric"].items() if k != "__name__"}} for series in body["data"]["result"]]
    return {**body, "data": {**body["data"], "result": result}}


def has_series(body: dict[str, Any]) -> bool:
    return body.get("status") == "success" and bool(body["data"]["result"])


def compare_case(case: Case, base: int, prometheus: Fetch, sightline: Fetch, adjust: Callable[[dict], dict] = lambda b: b) -> list[str]:
    """Every disagreement of `case` between the two APIs, each with query, time and both
    answers; empty when they agree. `adjust` maps Prometheus' answers first."""
    prom_query = substitute(case.query, base)
    our_query = substitute(case.sightline_query or case.query, base)
    problems = []
    # An error case's error may depend on the data (many-to-many matching): where there
    # is no data, both answer nothing. Prometheus must refuse it at least once.
    refused_somewhere = False
    for what, path, params in requests_of(case, base):
        want = adjust(prometheus(path, {**params, "query": prom_query}))
        have = sightline(path, {**params, "query": our_query})
        header = f"{our_query!r} ({what})"
        if want.get("status") == "error" and case.error:
            refused_somewhere = True
            if have.get("status") != "error" or have.get("errorType") != want.get("errorType"):
                problems.append(
                    f"{header}: prometheus refuses it ({want.get('errorType')}: {want.get('error')}), "
                    f"sightline answers {have.get('status')} {have.get('errorType', '')}: {brief(have)}"
                )
            continue
        if want.get("status") != "success":
            problems.append(f"{header}: prometheus 2.42 refuses the query: {want.get('errorType')}: {want.get('error')}")
            continue
        if have.get("status") != "success":
            problems.append(f"{header}: sightline refuses it: {have.get('errorType')}: {have.get('error')}")
            continue
        # A range query's series come sorted by labels; an instant vector's only where
        # the case says so.
        ordered = case.ordered or path.endswith("query_range")
        diffs = diff_results(want["data"], have["data"], ordered)
        if diffs:
            problems.append(
                f"{header}:\n    " + "\n    ".join(diffs[:12])
                + (f"\n    ... {len(diffs) - 12} more" if len(diffs) > 12 else "")
                + f"\n    prometheus: {brief(want)}\n    sightline:  {brief(have)}"
            )
    if case.error and not refused_somewhere:
        problems.append(f"{prom_query!r}: prometheus 2.42 accepts this error case at every time")
    return problems


def check_expected_difference(case: Case, base: int, prometheus: Fetch, sightline: Fetch) -> list[str]:
    """Checks a `differs=` note: the documented 2.42 -> 3.x difference must be there."""
    note = case.differs or ""
    stale = f"{case.query!r} is marked `differs={note}` but "
    if note.startswith("name-dropped:"):
        # Equal once __name__ is gone from Prometheus' answer, and Prometheus did keep it.
        problems = compare_case(case, base, prometheus, sightline, adjust=without_name)
        answers = [prometheus(path, {**params, "query": substitute(case.query, base)}) for _, path, params in requests_of(case, base)]
        named = any(body != without_name(body) for body in answers)
        return problems + ([] if named else [stale + "prometheus drops __name__ too: remove the note"])
    if note.startswith(("empty-in-2.42:", "error-in-2.42:")):
        # Prometheus answers nothing (or refuses the query), sightline answers something.
        want_error = note.startswith("error-in-2.42:")
        problems = []
        answered = False
        query = substitute(case.query, base)
        for what, path, params in requests_of(case, base):
            want, have = prometheus(path, {**params, "query": query}), sightline(path, {**params, "query": query})
            expected = want.get("status") == "error" if want_error else want.get("status") == "success" and not has_series(want)
            if not expected:
                problems.append(stale + f"prometheus answers {brief(want)} ({what})")
            if have.get("status") != "success":
                problems.append(f"{query!r} ({what}): sightline refuses it: {brief(have)}")
            answered = answered or has_series(have)
        if not answered:
            problems.append(f"{query!r}: sightline answers nothing at every time")
        return problems
    if compare_case(case, base, prometheus, sightline):
        return []
    return [stale + "both answers agree: remove the note"]


def check_case(case: Case, base: int, prometheus: Fetch, sightline: Fetch, peer_is_prometheus: bool) -> list[str]:
    """compare_case plus the checks of a case's expected-difference directives."""
    if peer_is_prometheus:
        # The peer is Prometheus 2.42 too: both sides run the case's own query and must agree.
        refused = case.error or (case.differs or "").startswith("error-in-2.42:")
        return compare_case(Case(case.line, case.query, case.ordered, case.instant_only, refused), base, prometheus, sightline)
    if case.differs:
        return check_expected_difference(case, base, prometheus, sightline)
    problems = compare_case(case, base, prometheus, sightline)
    if case.sightline_query:
        # The 2.42 spelling is gone in 3.x: sightline must refuse it as Prometheus 3 does.
        query = substitute(case.query, base)
        _, path, params = requests_of(case, base)[0]
        answer = sightline(path, {**params, "query": query})
        if answer.get("status") != "error" or answer.get("errorType") != "bad_data":
            problems.append(f"{query!r}: renamed in Prometheus 3, sightline should refuse it (bad_data): {brief(answer)}")
    return problems


# --- peers and data ------------------------------------------------------------------


def fetcher(api: PromApi) -> Fetch:
    """Instant queries as GET with URL parameters, range queries as a POSTed form (as
    Grafana sends them): both forms of the API."""

    def fetch(path: str, params: dict[str, str]) -> dict[str, Any]:
        url, headers = api.base_url + path, api.headers(None)
        if path.endswith("query_range"):
            resp = api.session.post(url, data=params, headers=headers, timeout=30)
        else:
            resp = api.session.get(url, params=params, headers=headers, timeout=30)
        try:
            return resp.json()
        except ValueError:
            return {"status": "error", "errorType": f"HTTP {resp.status_code}", "error": resp.text[:500]}

    return fetch


def remote_write(api: PromApi, bodies: list[bytes]) -> None:
    headers = {
        "Content-Encoding": "snappy",
        "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
        **api.headers(None),
    }
    for number, body in enumerate(bodies):
        resp = requests.post(api.base_url + "/api/v1/write", data=body, headers=headers, timeout=30)
        assert resp.status_code in (200, 204), (
            f"remote_write request {number + 1}/{len(bodies)} to {api.base_url}: HTTP {resp.status_code}: {resp.text[:500]}"
        )


@dataclass
class DiffEnv:
    base: int
    prometheus: Fetch
    sightline: Fetch
    peer_is_prometheus: bool
    # Cuts sightline's head into on-disk blocks (tenant promql-diff); None for a
    # Prometheus peer, which has no such API.
    flush: Callable[[], None] | None


@pytest.fixture(scope="module")
def diff_env(request, start_receiving_prometheus) -> DiffEnv:
    peer = os.environ.get("PROMQL_DIFF_PEER", "sightline")
    if peer not in ("sightline", "prometheus"):
        pytest.fail(f"PROMQL_DIFF_PEER={peer!r}: want sightline or prometheus")
    reference = start_receiving_prometheus("prometheus-promql-diff")
    children = [reference.child]
    if peer == "prometheus":
        twin = start_receiving_prometheus("prometheus-promql-diff-twin")
        children.append(twin.child)
        ours = twin.api
    else:
        ours = request.getfixturevalue("sightline").api(tenant=TENANT)
    reference_api = reference.api
    try:
        # Samples end a little before now: both stores accept them, and "now" is after them.
        base = int(time.time()) // 60 * 60 - SPAN_SECONDS
        bodies = write_requests(build_series(base))
        remote_write(reference_api, bodies)
        remote_write(ours, bodies)
        env = DiffEnv(base, fetcher(reference_api), fetcher(ours), peer == "prometheus", None)
        if peer == "sightline":
            env.flush = lambda: flush_to_blocks(ours)
        # Everything written is visible on both sides before the cases run.
        probe = {"query": '{__name__=~".+"}', "time": str(base + AFTER_LAST_SAMPLE_OFFSET)}

        def loaded() -> list[str]:
            want, have = env.prometheus("/api/v1/query", probe), env.sightline("/api/v1/query", probe)
            if want.get("status") != "success" or have.get("status") != "success":
                return [f"probe failed: {brief(want)} / {brief(have)}"]
            return diff_results(want["data"], have["data"], ordered=False)

        wait_until(lambda: not loaded(), 30, "the differential data set on both sides", interval=0.5)
        yield env
    finally:
        for child in children:
            child.stop()


def flush_to_blocks(api: PromApi) -> None:
    resp = api.session.post(api.base_url + "/api/sightline/v1/admin/flush", headers=api.headers(None), timeout=60)
    assert resp.status_code == 200, f"admin flush: HTTP {resp.status_code}: {resp.text[:500]}"


@pytest.fixture(scope="module", params=["head", "blocks"])
def stored(request, diff_env) -> DiffEnv:
    """Every case runs twice: on sightline's in-memory head, then after the head was
    cut into on-disk blocks (another read path: block index, chunk decoding)."""
    if request.param == "blocks" and diff_env.flush is not None:
        diff_env.flush()
    return diff_env


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_promql_differential(stored, case):
    problems = check_case(case, stored.base, stored.prometheus, stored.sightline, stored.peer_is_prometheus)
    assert not problems, f"promql_cases.txt:{case.line}: {case.query}\n  " + "\n  ".join(problems)


def test_promql_differential_case_count():
    """The issue asks for at least 200 queries."""
    assert len(CASES) >= 200, f"{len(CASES)} cases in {CASES_FILE.name}"
