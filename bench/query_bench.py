#!/usr/bin/env python3
"""Query latency helper of bench/query_bench.sh (standard library only).

  query_bench.py check  --url URL --end-ms T --out FILE --metric NAME...
      sample counts the system holds (sum(count_over_time(...))), per metric and in all
  query_bench.py run    --url URL --queries FILE --end-ms T --scrape-seconds S --out FILE
      times every query of the fixed set (warm-up runs, then --runs timed runs)
  query_bench.py report --results DIR --systems "..." --results-md bench/RESULTS.md ...
      writes the "Query latency" section of RESULTS.md between its markers, leaving
      the rest of the file (the ingest comparison) as it is

Latency is wall time on the client from sending the request to having read the whole
JSON answer, over a kept-alive loopback connection: what Grafana waits for.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.parse

NAMES = {
    "sightline": "Sightline",
    "prometheus": "Prometheus",
    "victoriametrics": "VictoriaMetrics",
}
RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
POINTS_PER_RANGE = 240
START_MARKER = "<!-- query-bench:start (written by bench/query_bench.sh; edit there) -->"
END_MARKER = "<!-- query-bench:end -->"


class Client:
    """One kept-alive HTTP connection to a Prometheus-compatible API."""

    def __init__(self, url, timeout):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.timeout = timeout
        self.connection = None

    def get(self, path, params, method="POST"):
        body = urllib.parse.urlencode(params)
        for attempt in (0, 1):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                began = time.perf_counter()
                # Queries as a POST form (what Grafana sends; no URL length limit).
                if method == "POST":
                    self.connection.request(
                        "POST", path, body=body,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
                else:
                    self.connection.request("GET", f"{path}?{body}" if body else path)
                response = self.connection.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - began
                return response.status, data, elapsed
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")


def read_queries(path):
    queries = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 3 or parts[1] not in ("range", "instant"):
                sys.exit(f"{path}:{number}: expected NAME<TAB>range|instant<TAB>PROMQL")
            queries.append({"name": parts[0], "kind": parts[1], "promql": parts[2]})
    return queries


def step_for(range_seconds, scrape_seconds):
    return max(scrape_seconds, range_seconds // POINTS_PER_RANGE)


def rate_interval(step, scrape_seconds):
    return max(step + scrape_seconds, 4 * scrape_seconds)


def cases(queries, ranges, end_ms, scrape_seconds):
    """Every timed request: (case name, query, path, params)."""
    end_seconds = end_ms // 1000
    out = []
    for query in queries:
        if query["kind"] == "instant":
            promql = query["promql"].replace("$__rate_interval", f"{4 * scrape_seconds}s")
            out.append((query["name"], query, "/api/v1/query",
                        {"query": promql, "time": str(end_seconds)}, None))
            continue
        for range_name in ranges:
            range_seconds = RANGES[range_name]
            step = step_for(range_seconds, scrape_seconds)
            end = end_seconds - end_seconds % step
            promql = query["promql"].replace("$__rate_interval", f"{rate_interval(step, scrape_seconds)}s")
            out.append((f"{query['name']} [{range_name}]", query, "/api/v1/query_range",
                        {"query": promql, "start": str(end - range_seconds), "end": str(end),
                         "step": str(step)}, range_name))
    return out


def summarize(data):
    """Series and points of an answer, and a rounded checksum of its values."""
    answer = json.loads(data)
    if answer.get("status") != "success":
        return {"error": f"{answer.get('errorType')}: {answer.get('error')}"}
    result = answer["data"]["result"]
    kind = answer["data"]["resultType"]
    if kind == "matrix":
        points = sum(len(series["values"]) for series in result)
        values = [float(v[1]) for series in result for v in series["values"]]
    elif kind == "vector":
        points = len(result)
        values = [float(series["value"][1]) for series in result]
    else:
        points, values = 1, [float(result[1])]
    finite = [v for v in values if v == v and abs(v) != float("inf")]
    return {"series": len(result) if kind in ("matrix", "vector") else 1, "points": points,
            "sum": sum(finite) if finite else None}


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def command_run(args):
    client = Client(args.url, args.timeout)
    queries = read_queries(args.queries)
    results = []
    for name, query, path, params, range_name in cases(queries, args.ranges.split(), args.end_ms, args.scrape_seconds):
        entry = {"case": name, "query": query["name"], "kind": query["kind"], "range": range_name,
                 "path": path, "params": params}
        try:
            status, data, _ = client.get(path, params)
            entry["status"] = status
            entry.update(summarize(data) if status == 200 else {"error": data[:300].decode("utf-8", "replace")})
            if status == 200 and "error" not in entry:
                for _ in range(args.warmup - 1):
                    client.get(path, params)
                latencies = []
                budget_began = time.perf_counter()
                for run in range(args.runs):
                    status, data, elapsed = client.get(path, params)
                    if status != 200:
                        entry["error"] = f"HTTP {status} on timed run {run}"
                        break
                    latencies.append(elapsed)
                    if run + 1 >= args.min_runs and time.perf_counter() - budget_began > args.budget_seconds:
                        break
                latencies.sort()
                entry["latencies_seconds"] = latencies
                entry["median_seconds"] = statistics.median(latencies) if latencies else None
                entry["p90_seconds"] = percentile(latencies, 0.9)
        except (OSError, http.client.HTTPException, ValueError) as error:
            entry["error"] = f"{type(error).__name__}: {error}"
        shown = f"{entry['median_seconds'] * 1000:.1f} ms" if entry.get("median_seconds") is not None else entry.get("error")
        print(f"  {name}: {shown} ({entry.get('series')} series, {entry.get('points')} points)", file=sys.stderr)
        results.append(entry)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({"system": args.system, "url": args.url, "end_ms": args.end_ms, "results": results}, handle, indent=1)


def command_check(args):
    client = Client(args.url, args.timeout)
    end_seconds = args.end_ms / 1000
    window = f"{args.window_seconds}s"
    def count(selector):
        promql = f"sum(count_over_time({selector}[{window}]))"
        status, data, elapsed = client.get("/api/v1/query", {"query": promql, "time": f"{end_seconds:.3f}"})
        if status != 200:
            print(f"  check {promql}: HTTP {status}: {data[:200]!r}", file=sys.stderr)
            return None
        result = json.loads(data)["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0

    counts = {}
    for metric in args.metric:
        counts[metric] = count(metric)
        print(f"  check {metric}: {counts[metric]}", file=sys.stderr)
    # All samples: one metric name at a time (count_over_time drops the name, so over
    # several names at once Prometheus refuses the duplicate label sets).
    status, data, _ = client.get("/api/v1/label/__name__/values", {}, method="GET")
    names = json.loads(data)["data"] if status == 200 else []
    per_name = [count(f'{{__name__="{name}"}}') for name in names]
    total = None if not names or None in per_name else sum(per_name)
    counts[f"(all {len(names)} metric names)"] = total
    print(f"  check all {len(names)} metric names: {total}", file=sys.stderr)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(counts, handle, indent=1)


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def machine():
    cpu, memory = "unknown", "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return f"{os.cpu_count()} × {cpu}, {memory} RAM, kernel {platform.release()}"


def git_head():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
        return head + (" (plus uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def ms(seconds):
    if seconds is None:
        return "n/a"
    value = seconds * 1000
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def ratio(ours, theirs):
    if ours is None or not theirs:
        return None
    return ours / theirs


def ratio_text(value):
    return "n/a" if value is None else f"{value:.2f}×"


def command_report(args):
    systems = args.systems.split()
    runs = {system: read_json(os.path.join(args.results, f"{system}-queries.json")) or {} for system in systems}
    checks = {system: read_json(os.path.join(args.results, f"{system}-check.json")) or {} for system in systems}
    setup = {system: read_json(os.path.join(args.results, f"{system}-setup.json")) or {} for system in systems}
    by_case = {}
    order = []
    for system in systems:
        for entry in runs[system].get("results", []):
            if entry["case"] not in by_case:
                order.append(entry["case"])
                by_case[entry["case"]] = {}
            by_case[entry["case"]][system] = entry

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [START_MARKER, "", "# Query latency", ""]
    out.append(f"Generated by `{args.invocation}` on {now} (workspace commit `{git_head()}`). "
               f"The whole script took **{args.total_seconds} s** ({args.total_seconds / 60:.1f} min).")
    def loadavg(system):
        before = read_text(os.path.join(args.results, f"{system}-loadavg-before"))
        after = read_text(os.path.join(args.results, f"{system}-loadavg-after"))
        return f"{NAMES.get(system, system)} {before or 'n/a'} → {after or 'n/a'}"

    out += ["", f"- Machine: {machine()}. One system runs at a time; the others are stopped.",
            "- Load average (1/5/15 min) before → after each system's timed queries (the machine is "
            "shared; other work skews a system's figures): " + "; ".join(loadavg(s) for s in systems) + ".",
            f"- Versions: " + "; ".join(f"{NAMES.get(s, s)}: {setup[s].get('version', 'n/a')}" for s in systems),
            f"- Data (identical for every system): `{args.env}`: {args.data_note}",
            f"- Loading: " + "; ".join(f"{NAMES.get(s, s)}: {setup[s].get('load_note', 'n/a')}" for s in systems),
            f"- Timing: per query {args.warmup} warm-up run(s), then {args.runs} timed runs "
            f"(fewer once a query has used {args.budget_seconds:.0f} s, at least {args.min_runs}); "
            "client wall time to the end of the JSON answer over a kept-alive loopback connection. "
            "Range queries end at the newest sample (aligned to the step), step = max(range / 240, "
            "scrape interval) (60s, 6m, 42m); `$__rate_interval` = max(step + scrape interval, 4 × scrape interval) "
            "as in Grafana. VictoriaMetrics runs with `-search.disableCache` (its rollup result "
            "cache would otherwise answer the repeated runs from memory).", ""]

    out += ["## Same data in every system", "",
            "`sum(count_over_time(X[8d]))` at the newest sample, through each system's PromQL API:", "",
            "| Series | " + " | ".join(NAMES.get(s, s) for s in systems) + " | Agree |",
            "|---|" + "---:|" * len(systems) + "---|"]
    names = []
    for system in systems:
        for name in checks[system]:
            if name not in names:
                names.append(name)
    all_agree = True
    for name in names:
        values = [checks[s].get(name) for s in systems]
        agree = len(set(values)) == 1 and values[0] not in (None, 0)
        all_agree &= agree
        shown = " | ".join("n/a" if v is None else f"{v:,}" for v in values)
        out.append(f"| `{name}` | {shown} | {'yes' if agree else '**NO**'} |")
    out.append("")

    header = ("| Query | Range | Series (S/P/VM) | " + " | ".join(f"{NAMES.get(s, s)} median (p90) ms" for s in systems)
              + " | ÷ Prometheus | ÷ VictoriaMetrics |")
    out += ["## Latency per query", "", header, "|---|---|---|" + "---:|" * len(systems) + "---:|---:|"]
    ratios_prometheus, ratios_victoria, mismatches, failures = [], [], [], []
    for case in order:
        entries = by_case[case]
        any_entry = next(iter(entries.values()))
        series = [entries.get(s, {}).get("series") for s in systems]
        cells = []
        for system in systems:
            entry = entries.get(system, {})
            if entry.get("median_seconds") is None:
                cells.append(f"error: {str(entry.get('error', 'not run'))[:60]}")
                failures.append((case, system))
            else:
                cells.append(f"{ms(entry['median_seconds'])} ({ms(entry.get('p90_seconds'))})")
        known = [s for s in series if s is not None]
        if len(set(known)) > 1 or (known and known[0] == 0):
            mismatches.append((case, series))
        ours = entries.get("sightline", {}).get("median_seconds")
        vs_prometheus = ratio(ours, entries.get("prometheus", {}).get("median_seconds"))
        vs_victoria = ratio(ours, entries.get("victoriametrics", {}).get("median_seconds"))
        if vs_prometheus is not None:
            ratios_prometheus.append((case, vs_prometheus))
        if vs_victoria is not None:
            ratios_victoria.append((case, vs_victoria))
        query_name = any_entry["query"]
        range_name = any_entry.get("range") or "instant"
        series_text = "/".join("–" if s is None else str(s) for s in series)
        out.append(f"| `{query_name}` | {range_name} | {series_text} | " + " | ".join(cells)
                   + f" | {ratio_text(vs_prometheus)} | {ratio_text(vs_victoria)} |")
    out += ["", "Ratios are Sightline's median latency divided by the peer's: below 1 is faster.", ""]

    out += ["## Against the targets", ""]
    slower_than_prometheus = [(c, r) for c, r in ratios_prometheus if r >= 1.0]
    median_vs_victoria = statistics.median([r for _, r in ratios_victoria]) if ratios_victoria else None
    geo = lambda rs: (statistics.geometric_mean([r for _, r in rs]) if rs else None)
    target_prometheus = ("**met**" if ratios_prometheus and not slower_than_prometheus and not failures
                         else "**not met**")
    target_victoria = ("**met**" if median_vs_victoria is not None and median_vs_victoria <= 1.0 and not failures
                       else "**not met**")
    out += ["| Target | Figure | Verdict |", "|---|---|---|",
            f"| faster than Prometheus on every query | slower on {len(slower_than_prometheus)} of "
            f"{len(ratios_prometheus)} cases; geometric mean ratio {ratio_text(geo(ratios_prometheus))} "
            f"| {target_prometheus} |",
            f"| not slower than VictoriaMetrics on the median | median of the per-case ratios "
            f"{ratio_text(median_vs_victoria)}; geometric mean {ratio_text(geo(ratios_victoria))} "
            f"| {target_victoria} |", ""]
    if slower_than_prometheus:
        worst = sorted(slower_than_prometheus, key=lambda item: -item[1])
        out.append("Slower than Prometheus: " + ", ".join(f"`{c}` {ratio_text(r)}" for c, r in worst) + ".")
        out.append("")
    if not all_agree:
        out += ["**The systems do not hold the same sample counts (table above): the latencies are not comparable.**", ""]
    if mismatches:
        out.append("Series counts differ between systems (a latency on a different answer is not comparable): "
                   + "; ".join(f"`{c}` {'/'.join(str(s) for s in series)}" for c, series in mismatches) + ".")
        out.append("")
    if failures:
        out.append("Failed: " + ", ".join(f"`{c}` on {NAMES.get(s, s)}" for c, s in failures) + ".")
        out.append("")
    notes = read_text(args.notes) if args.notes else ""
    if notes:
        out += [notes, ""]
    out.append(END_MARKER)
    section = "\n".join(out) + "\n"

    try:
        with open(args.results_md, encoding="utf-8") as handle:
            existing = handle.read()
    except OSError:
        existing = ""
    if START_MARKER in existing and END_MARKER in existing:
        before = existing[:existing.index(START_MARKER)]
        after = existing[existing.index(END_MARKER) + len(END_MARKER):].lstrip("\n")
        text = before + section + ("\n" + after if after else "")
    else:
        text = existing.rstrip("\n") + ("\n\n" if existing else "") + section
    with open(args.results_md, "w", encoding="utf-8") as handle:
        handle.write(text)
    with open(os.path.join(args.results, "query-section.md"), "w", encoding="utf-8") as handle:
        handle.write(section)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("--system", required=True)
    run.add_argument("--url", required=True)
    run.add_argument("--queries", required=True)
    run.add_argument("--end-ms", type=int, required=True)
    run.add_argument("--scrape-seconds", type=int, required=True)
    run.add_argument("--ranges", default="1h 24h 7d")
    run.add_argument("--warmup", type=int, default=2)
    run.add_argument("--runs", type=int, default=7)
    run.add_argument("--min-runs", type=int, default=3)
    run.add_argument("--budget-seconds", type=float, default=20.0)
    run.add_argument("--timeout", type=float, default=300.0)
    run.add_argument("--out", required=True)
    check = commands.add_parser("check")
    check.add_argument("--url", required=True)
    check.add_argument("--end-ms", type=int, required=True)
    check.add_argument("--window-seconds", type=int, required=True)
    check.add_argument("--metric", action="append", default=[])
    check.add_argument("--timeout", type=float, default=300.0)
    check.add_argument("--out", required=True)
    report = commands.add_parser("report")
    report.add_argument("--results", required=True)
    report.add_argument("--systems", required=True)
    report.add_argument("--results-md", required=True)
    report.add_argument("--total-seconds", type=int, required=True)
    report.add_argument("--invocation", default="bench/query_bench.sh")
    report.add_argument("--env", default="")
    report.add_argument("--data-note", default="")
    report.add_argument("--warmup", type=int, default=2)
    report.add_argument("--runs", type=int, default=7)
    report.add_argument("--min-runs", type=int, default=3)
    report.add_argument("--budget-seconds", type=float, default=20.0)
    report.add_argument("--notes", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "query_notes.md"),
                        help="Markdown appended to the section (the profile findings); skipped when missing")
    args = parser.parse_args()
    {"run": command_run, "check": command_check, "report": command_report}[args.command](args)


if __name__ == "__main__":
    main()
