"""The data set of the PromQL differential test, and a remote_write encoder for it.

`build_series(base)` returns a deterministic data set (same seed, same samples) of about
sixty series over two hours from `base` (a whole minute, in seconds): counters with
resets, gauges (negative values, a gap longer than the lookback, an explicit staleness
marker), classic histograms with `le` buckets and their `_sum`/`_count`, 0/1 `up`
series, values in [-1, 1] for the inverse trig functions, gauges with NaN, infinities
and huge values, a badly exported histogram, label values beyond ASCII, series scraped at
irregular intervals, and an info-style metric for
`group_left`.

Every sample sits at `base + 15 s * k + 1.234 s`: query times, ranges, offsets, `@`
times and steps are whole seconds, so no sample ever falls exactly on a range or
lookback boundary. Prometheus 2.42 includes a sample at `t - range`, 3.x (and
sightline) exclude it; with this jitter both semantics select the same samples.

`write_requests(series)` encodes the data as remote_write 1.0 bodies (hand-written
protobuf, snappy block format made of literals only: valid snappy, just not
compressed), in time slices so every request is later than the previous one for every
series, as Prometheus' head wants (it refuses samples older than its newest minus one
hour).
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass

SCRAPE_INTERVAL_MS = 15_000
JITTER_MS = 1_234
SPAN_SECONDS = 2 * 3600
POINTS = SPAN_SECONDS * 1000 // SCRAPE_INTERVAL_MS  # 480 samples per full series
SEED = 20261121
# Prometheus' staleness marker (value.StaleNaN): a NaN with this exact bit pattern.
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]

HISTOGRAM_BUCKETS = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]


@dataclass
class GeneratedSeries:
    labels: dict[str, str]
    samples: list[tuple[int, float]]  # (timestamp ms, value), ascending


def sample_time(base_seconds: int, k: int) -> int:
    return base_seconds * 1000 + k * SCRAPE_INTERVAL_MS + JITTER_MS


def build_series(base_seconds: int) -> list[GeneratedSeries]:
    rng = random.Random()
    out: list[GeneratedSeries] = []

    def add(labels: dict[str, str], values: list[float | None]) -> None:
        """`values[k]` is the sample at step k; None means no sample at that step."""
        samples = [(sample_time(base_seconds, k), v) for k, v in enumerate(values) if v is not None]
        out.append(GeneratedSeries(dict(labels), samples))

    # Each family draws from its own sequence: adding one leaves the others as they were.
    rng.seed(f"{SEED}:http_requests_total")
    # Counters with resets: http_requests_total{job, instance, code}.
    resets_at = {0: [200], 3: [100, 350], 5: [479], 6: [1, 2]}
    index = 0
    for job in ("api", "web"):
        for instance in ("10.0.0.1:8080", "10.0.0.2:8080"):
            for code in ("200", "500"):
                rate = (7.0 if code == "200" else 0.4) * (1.5 if job == "api" else 1.0)
                # Well above zero at the start (see the histograms below).
                value = float(rng.randint(1000, 5000))
                values: list[float | None] = []
                for k in range(POINTS):
                    if k in resets_at.get(index, []):
                        value = float(rng.randint(0, 3))
                    else:
                        value += rng.randint(0, int(rate * 15 * 2))
                    values.append(value)
                labels = {"__name__": "http_requests_total", "job": job, "instance": instance, "code": code}
                add(labels, values)
                index += 1

    rng.seed(f"{SEED}:node_temperature_celsius")
    # Gauges with fractions, negatives, a gap longer than the 5m lookback, a staleness
    # marker, and a series that starts late.
    for i, (instance, sensor) in enumerate(
        [("10.0.0.1:9100", "cpu"), ("10.0.0.1:9100", "board"), ("10.0.0.2:9100", "cpu"), ("10.0.0.2:9100", "outside")]
    ):
        values = []
        for k in range(POINTS):
            base_value = 40.0 + 10 * i if sensor != "outside" else -3.0
            v = base_value + 8.0 * math.sin(k / (20.0 + 7 * i)) + rng.uniform(-1.5, 1.5)
            values.append(round(v, 3))
        if i == 1:
            for k in range(300, 340):  # 10 minutes without samples
                values[k] = None
        if i == 2:
            values[400] = STALE_NAN  # explicit end of series, then it comes back
            for k in range(401, 420):
                values[k] = None
        if i == 3:
            for k in range(0, 60):  # starts 15 minutes late
                values[k] = None
        add({"__name__": "node_temperature_celsius", "instance": instance, "sensor": sensor}, values)

    rng.seed(f"{SEED}:queue_depth")
    # Small integer gauges: queue_depth{job, queue}.
    for job in ("api", "web"):
        for queue in ("high", "low"):
            value = rng.randint(0, 5)
            values = []
            for k in range(POINTS):
                if rng.random() < 0.3:
                    value = max(0, value + rng.choice([-2, -1, 1, 2]))
                values.append(float(value))
            add({"__name__": "queue_depth", "job": job, "queue": queue}, values)

    rng.seed(f"{SEED}:request_duration_seconds")
    # Classic histograms: request_duration_seconds_{bucket,sum,count}{job, instance}.
    for job in ("api", "web"):
        for instance in ("10.0.0.1:8080", "10.0.0.2:8080"):
            scale = 0.3 if job == "api" else 1.2
            counts = [0.0] * len(HISTOGRAM_BUCKETS)
            total = 0.0

            def observe(how_many: int) -> None:
                nonlocal total
                for _ in range(how_many):
                    duration = rng.expovariate(1.0 / scale)
                    total += duration
                    for b, le in enumerate(HISTOGRAM_BUCKETS):
                        if duration <= float(le):
                            counts[b] += 1

            # Observed mid-life, as a scrape would: counts start well above zero, so a
            # range over the series' start never extrapolates down to the zero point
            # (where 2.42 and 3.x differ: prometheus/prometheus#13725). Same for the
            # counters above.
            observe(400)
            bucket_values: list[list[float | None]] = [[] for _ in HISTOGRAM_BUCKETS]
            sum_values: list[float | None] = []
            count_values: list[float | None] = []
            for k in range(POINTS):
                if job == "web" and instance.startswith("10.0.0.2") and k == 250:
                    counts = [0.0] * len(HISTOGRAM_BUCKETS)  # process restart
                    total = 0.0
                observe(rng.randint(0, 12))
                for b in range(len(HISTOGRAM_BUCKETS)):
                    bucket_values[b].append(counts[b])
                sum_values.append(round(total, 6))
                count_values.append(counts[-1])
            common = {"job": job, "instance": instance}
            for b, le in enumerate(HISTOGRAM_BUCKETS):
                add({"__name__": "request_duration_seconds_bucket", **common, "le": le}, bucket_values[b])
            add({"__name__": "request_duration_seconds_sum", **common}, sum_values)
            add({"__name__": "request_duration_seconds_count", **common}, count_values)

    rng.seed(f"{SEED}:odd_histogram_bucket")
    # A badly exported histogram: a bucket bound written twice ("1" and "1.0"), buckets
    # that are not monotonic, one instance without +Inf, one with an unparsable bound.
    for instance, bounds in (
        ("a", ["0.1", "0.25", "1", "1.0", "+Inf"]),
        ("b", ["0.1", "0.5", "2"]),
        ("c", ["0.1", "abc", "1e0", "+Inf"]),
    ):
        cumulative = [float(100 * (b + 1)) for b in range(len(bounds))]
        series_values: list[list[float | None]] = [[] for _ in bounds]
        for k in range(POINTS):
            for b in range(len(bounds)):
                cumulative[b] += rng.randint(0, 4) * (b + 1)
                # Now and then a lower bucket runs ahead of a higher one.
                value = cumulative[b] + (30.0 if b == 0 and k % 7 == 3 else 0.0)
                series_values[b].append(value)
        for bound, values in zip(bounds, series_values):
            add({"__name__": "odd_histogram_bucket", "instance": instance, "le": bound}, values)

    rng.seed(f"{SEED}:up")
    # up{job, instance}: 0/1 with a few flaps.
    for job, instance in (("api", "10.0.0.1:8080"), ("api", "10.0.0.2:8080"), ("web", "10.0.0.1:8080"), ("web", "10.0.0.2:8080")):
        values = [0.0 if rng.random() < 0.05 else 1.0 for _ in range(POINTS)]
        add({"__name__": "up", "job": job, "instance": instance}, values)

    # Values in [-1, 1] for acos/asin/atanh and friends.
    for shape in ("sine", "cosine"):
        fn = math.sin if shape == "sine" else math.cos
        values = [round(fn(k / 13.0), 6) for k in range(POINTS)]
        add({"__name__": "signal_ratio", "shape": shape}, values)

    rng.seed(f"{SEED}:flaky_gauge")
    # Gauges with non-finite and huge values: NaN (a plain one, not a staleness marker),
    # +Inf, -Inf and values near the float64 limit, among ordinary ones.
    for i, instance in enumerate(("10.0.0.1:9100", "10.0.0.2:9100")):
        values = []
        for k in range(POINTS):
            roll = rng.random()
            if roll < 0.04:
                values.append(math.nan)
            elif roll < 0.06:
                values.append(math.inf if (k + i) % 2 else -math.inf)
            elif roll < 0.09:
                values.append(rng.choice([1.5e308, -1.5e308, 1e-300]))
            else:
                values.append(round(rng.uniform(-100, 100), 2))
        add({"__name__": "flaky_gauge", "instance": instance}, values)

    # Label values beyond ASCII letters: Unicode letters and digits, tab and newline,
    # for regexes (Go's \d, \w, \s, \b are ASCII-only) and label functions.
    for i, name in enumerate(("Ünïcödé ٣", "ascii 7", "tab\there", "snake_case_42", "ΣΙΓΜΑ σίγμα")):
        add({"__name__": "unicode_info", "name": name, "index": str(i)}, [float(i)] * POINTS)
    # A newline in a label value (`.` matches it in 3.x regexes, not in 2.42's).
    for i, text in enumerate(("line1\nline2", "one line")):
        add({"__name__": "multiline_info", "text": text}, [float(i)] * POINTS)

    # Irregular scrapes: 3 to 45 s apart (still 234 ms past a whole second), a counter
    # with resets and a gauge, for rate extrapolation with uneven sample spacing.
    rng.seed(f"{SEED}:irregular")
    for instance in ("10.0.0.1:9100", "10.0.0.2:9100"):
        t = base_seconds * 1000 + JITTER_MS + rng.randint(0, 20) * 1000
        end = base_seconds * 1000 + SPAN_SECONDS * 1000 - SCRAPE_INTERVAL_MS
        counter, counter_samples, gauge_samples = float(rng.randint(500, 900)), [], []
        while t < end:
            counter = float(rng.randint(0, 5)) if rng.random() < 0.01 else counter + rng.randint(0, 40)
            counter_samples.append((t, counter))
            gauge_samples.append((t, round(rng.gauss(50, 20), 2)))
            t += rng.randint(3, 45) * 1000
        out.append(GeneratedSeries({"__name__": "irregular_total", "instance": instance}, counter_samples))
        out.append(GeneratedSeries({"__name__": "irregular_gauge", "instance": instance}, gauge_samples))

    # Info-style metric for group_left joins.
    for job, version in (("api", "1.4.2"), ("web", "2.0.0-rc.1")):
        add({"__name__": "build_info", "job": job, "version": version}, [1.0] * POINTS)

    return out


# --- remote_write encoding ----------------------------------------------------------


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 as protobuf encodes it: two's complement, ten bytes
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _encode_sample(timestamp_ms: int, value: float) -> bytes:
    # Sample { double value = 1; int64 timestamp = 2; }
    return b"\x09" + struct.pack("<d", value) + b"\x10" + _varint(timestamp_ms)


def encode_write_request(series: list[tuple[dict[str, str], list[tuple[int, float]]]]) -> bytes:
    """prometheus.WriteRequest { repeated TimeSeries timeseries = 1; } as protobuf."""
    body = bytearray()
    for labels, samples in series:
        ts = bytearray()
        for name in sorted(labels):
            label = _field_bytes(1, name.encode()) + _field_bytes(2, labels[name].encode())
            ts += _field_bytes(1, label)
        for timestamp_ms, value in samples:
            ts += _field_bytes(2, _encode_sample(timestamp_ms, value))
        body += _field_bytes(1, bytes(ts))
    return bytes(body)


def snappy_block(data: bytes) -> bytes:
    """Snappy block format of `data` using literal elements only (no compression)."""
    out = bytearray(_varint(len(data)))
    chunk = 1 << 16
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        n = len(piece) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 1 << 8:
            out += bytes([60 << 2, n])
        elif n < 1 << 16:
            out += bytes([61 << 2]) + n.to_bytes(2, "little")
        else:
            out += bytes([62 << 2]) + n.to_bytes(3, "little")
        out += piece
    return bytes(out)


def write_requests(series: list[GeneratedSeries], slice_ms: int = 10 * 60 * 1000) -> list[bytes]:
    """Snappy-compressed remote_write bodies, one per time slice, oldest first."""
    if not series:
        return []
    first = min(s.samples[0][0] for s in series if s.samples)
    last = max(s.samples[-1][0] for s in series if s.samples)
    bodies = []
    start = first
    while start <= last:
        end = start + slice_ms
        batch = []
        for s in series:
            samples = [(t, v) for t, v in s.samples if start <= t < end]
            if samples:
                batch.append((s.labels, samples))
        if batch:
            bodies.append(snappy_block(encode_write_request(batch)))
        start = end
    return bodies
