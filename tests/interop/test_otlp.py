"""The OpenTelemetry Python SDK exports metrics to sightline over OTLP gRPC and OTLP HTTP;
hand-written OTLP/JSON goes to both HTTP listeners. The data must come out of sightline's
Prometheus API under the names Prometheus' own OTLP translation gives them
(`service.namespace/service.name` -> job, `service.instance.id` -> instance, unit and
`_total` suffixes, other resource attributes on `target_info`).

Each case writes to its own tenant so the cases cannot see each other's data.
"""

from __future__ import annotations

import time

import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from interop_util import fmt_labels, same_float, series_key, wait_for_match

APPEAR_TIMEOUT = 30.0
JOB = "shop/checkout"
INSTANCE = "i-1"
CUMULATIVE = {
    kind: AggregationTemporality.CUMULATIVE
    for kind in (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge)
}
LATENCY_BOUNDS = (2.5, 5, 10, 25, 50, 100)
LATENCIES_MS = (1, 3, 7, 7, 30, 200)


class RecordingExporter(MetricExporter):
    """Delegates to a real OTLP exporter and keeps each export's result for the diagnosis."""

    def __init__(self, inner: MetricExporter):
        super().__init__(preferred_temporality=CUMULATIVE)
        self.inner = inner
        self.results: list[MetricExportResult] = []

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs) -> MetricExportResult:
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.results.append(result)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def record_demo_metrics(exporter: MetricExporter) -> RecordingExporter:
    recording = RecordingExporter(exporter)
    resource = Resource.create(
        {
            "service.name": "checkout",
            "service.namespace": "shop",
            "service.instance.id": INSTANCE,
            "deployment.environment": "test",
        }
    )
    # A long interval: the only export is the explicit force_flush below.
    reader = PeriodicExportingMetricReader(recording, export_interval_millis=3_600_000)
    latency_view = View(
        instrument_name="demo.latency",
        aggregation=ExplicitBucketHistogramAggregation(boundaries=LATENCY_BOUNDS),
    )
    provider = MeterProvider(resource=resource, metric_readers=[reader], views=[latency_view])
    meter = provider.get_meter("sightline.interop", "1.0.0")

    requests_counter = meter.create_counter("demo.requests", unit="{request}", description="Requests served.")
    requests_counter.add(5, {"http.route": "/cart"})
    requests_counter.add(2, {"http.route": "/cart"})
    requests_counter.add(3, {"http.route": "/pay"})

    queue_size = meter.create_up_down_counter("demo.queue.size", unit="{item}", description="Items queued.")
    queue_size.add(10)
    queue_size.add(-3)

    latency = meter.create_histogram("demo.latency", unit="ms", description="Request latency.")
    for value in LATENCIES_MS:
        latency.record(value, {"http.route": "/cart"})

    meter.create_observable_gauge(
        "demo.memory.used",
        callbacks=[lambda _options: [Observation(4096, {"pool": "heap"})]],
        unit="By",
        description="Memory in use.",
    )

    flushed = provider.force_flush(timeout_millis=30_000)
    provider.shutdown(timeout_millis=30_000)
    assert flushed, "MeterProvider.force_flush timed out"
    assert recording.results and all(r == MetricExportResult.SUCCESS for r in recording.results), (
        f"OTLP export results: {recording.results} (see the captured log for the exporter's error)"
    )
    return recording


def expected_demo_series() -> list[tuple[str, dict[str, str], float]]:
    """(metric name, labels that must be present, value) for everything record_demo_metrics sent."""
    ident = {"job": JOB, "instance": INSTANCE}
    cart = {**ident, "http_route": "/cart"}
    expected = [
        ("demo_requests_total", cart, 7.0),
        ("demo_requests_total", {**ident, "http_route": "/pay"}, 3.0),
        ("demo_queue_size", ident, 7.0),
        ("demo_memory_used_bytes", {**ident, "pool": "heap"}, 4096.0),
        ("demo_latency_milliseconds_sum", cart, float(sum(LATENCIES_MS))),
        ("demo_latency_milliseconds_count", cart, float(len(LATENCIES_MS))),
        ("target_info", {**ident, "deployment_environment": "test", "telemetry_sdk_language": "python"}, 1.0),
    ]
    for bound in (*LATENCY_BOUNDS, float("inf")):
        le = "+Inf" if bound == float("inf") else format_le(bound)
        count = sum(1 for v in LATENCIES_MS if v <= bound)
        expected.append(("demo_latency_milliseconds_bucket", {**cart, "le": le}, float(count)))
    return expected


def format_le(bound: float) -> str:
    """Prometheus prints bucket bounds like Go's strconv.FormatFloat(b, 'f', -1, 64)."""
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


# Labels allowed on every series besides the data point's attributes and job/instance:
# none, because Prometheus' OTLP receiver promotes scope metadata (otel_scope_*) only
# when configured to (promote_scope_metadata, default false), and so do we.
SDK_SCOPE_LABELS: dict[str, str] = {}


def problems_with(
    api,
    expected: list[tuple[str, dict[str, str], float]],
    scope_labels: dict[str, str],
    exact_labels: bool = True,
) -> list[str]:
    """Each expected (name, labels, value) must be exactly one series with that value.

    With `exact_labels`, a series may carry no other labels than the expected ones and
    `scope_labels` (`target_info` is always matched on a subset: it holds every resource
    attribute).
    """
    problems: list[str] = []
    results: dict[str, list[dict]] = {}
    for name, labels, value in expected:
        if name not in results:
            results[name] = api.query(name)
        matching = [s for s in results[name] if all(s["metric"].get(k) == v for k, v in labels.items())]
        want = fmt_labels(series_key({"__name__": name, **labels}))
        if len(matching) != 1:
            have = [fmt_labels(series_key(s["metric"])) for s in results[name]][:10]
            problems.append(f"{want}: want 1 series, got {len(matching)}; all {name} series: {have}")
            continue
        series = matching[0]
        got = series["value"][1]
        if not same_float(got, repr(value)):
            problems.append(f"{want}: value {got!r}, want {value}")
        if exact_labels and name != "target_info":
            for key, label_value in series["metric"].items():
                if key == "__name__" or key in labels:
                    continue
                if scope_labels.get(key) != label_value:
                    problems.append(f"{want}: unexpected label {key}={label_value!r}")
    return problems


def target_info_problems(api) -> list[str]:
    infos = api.query(f'target_info{{job="{JOB}",instance="{INSTANCE}"}}')
    problems = []
    for series in infos:
        for promoted in ("service_name", "service_namespace", "service_instance_id"):
            if promoted in series["metric"]:
                problems.append(f"target_info must not repeat {promoted} (it is job/instance): {series['metric']}")
    return problems


def metadata_problems(api) -> list[str]:
    """Type and help of each OTLP metric come out of /api/v1/metadata."""
    want = {
        "demo_requests_total": ("counter", "Requests served."),
        "demo_queue_size": ("gauge", "Items queued."),
        "demo_latency_milliseconds": ("histogram", "Request latency."),
        "demo_memory_used_bytes": ("gauge", "Memory in use."),
    }
    metadata = api.get_json("/api/v1/metadata")
    problems = []
    for metric, (kind, help_text) in want.items():
        # Translators differ on whether a counter's family keeps `_total`; accept either.
        entries = metadata.get(metric) or metadata.get(metric.removesuffix("_total")) or []
        have = [(m.get("type"), m.get("help")) for m in entries]
        if have != [(kind, help_text)]:
            problems.append(f"/api/v1/metadata for {metric}: {have}, want {[(kind, help_text)]}")
    return problems


OTLP_CASES = ["grpc", "http-protobuf", "http-protobuf-gzip"]


def make_exporter(case: str, sightline, tenant: str) -> MetricExporter:
    if case == "grpc":
        return GrpcMetricExporter(
            endpoint=sightline.otlp_grpc_endpoint,
            insecure=True,
            headers={"x-scope-orgid": tenant},  # gRPC metadata keys are lowercase
            timeout=10,
            preferred_temporality=CUMULATIVE,
        )
    compression = HttpCompression.Gzip if case.endswith("gzip") else HttpCompression.NoCompression
    return HttpMetricExporter(
        endpoint=f"{sightline.otlp_http_base}/v1/metrics",
        headers={"X-Scope-OrgID": tenant},
        timeout=10,
        compression=compression,
        preferred_temporality=CUMULATIVE,
    )


@pytest.mark.parametrize("case", OTLP_CASES)
def test_otel_sdk_export_appears_with_prometheus_names(sightline, case):
    tenant = f"otlp-{case}"
    record_demo_metrics(make_exporter(case, sightline, tenant))
    api = sightline.api(tenant=tenant)
    expected = expected_demo_series()
    wait_for_match(
        lambda: problems_with(api, expected, SDK_SCOPE_LABELS) + target_info_problems(api),
        APPEAR_TIMEOUT,
        f"OTLP {case} metrics in tenant {tenant}",
    )
    problems = metadata_problems(api)
    assert not problems, "\n".join(problems)
    # The other cases' tenants are separate: nothing of this one leaks into `default`.
    assert sightline.api(tenant="default").query(f'demo_requests_total{{job="{JOB}"}}') == []


def otlp_json_request(now_ns: int) -> dict:
    def attr(key: str, value: str) -> dict:
        return {"key": key, "value": {"stringValue": value}}

    return {
        "resourceMetrics": [
            {
                "resource": {"attributes": [attr("service.name", "cart"), attr("service.instance.id", "i-2")]},
                "scopeMetrics": [
                    {
                        "scope": {"name": "handmade", "version": "1"},
                        "metrics": [
                            {
                                "name": "json.gauge",
                                "description": "A gauge sent as OTLP/JSON.",
                                "gauge": {
                                    "dataPoints": [
                                        {"asDouble": 0.25, "timeUnixNano": str(now_ns), "attributes": [attr("k", "v")]}
                                    ]
                                },
                            },
                            {
                                "name": "json.events",
                                "description": "A monotonic cumulative sum; int64 as a JSON string.",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "asInt": "42",
                                            "startTimeUnixNano": str(now_ns - 60_000_000_000),
                                            "timeUnixNano": str(now_ns),
                                        }
                                    ],
                                },
                            },
                        ],
                    }
                ],
            }
        ]
    }


@pytest.mark.parametrize("listener", ["main", "otlp-http"])
def test_otlp_json_over_http(sightline, listener):
    tenant = f"otlp-json-{listener}"
    base = sightline.base_url if listener == "main" else sightline.otlp_http_base
    resp = requests.post(
        f"{base}/v1/metrics",
        json=otlp_json_request(time.time_ns()),
        headers={"X-Scope-OrgID": tenant},
        timeout=10,
    )
    assert resp.status_code == 200, f"POST {base}/v1/metrics (JSON): HTTP {resp.status_code}: {resp.text[:500]}"
    assert resp.headers.get("Content-Type", "").startswith("application/json"), (
        f"OTLP/HTTP answers in the request's encoding; got Content-Type {resp.headers.get('Content-Type')!r}"
    )
    ident = {"job": "cart", "instance": "i-2"}
    expected = [("json_gauge", {**ident, "k": "v"}, 0.25), ("json_events_total", ident, 42.0)]
    api = sightline.api(tenant=tenant)
    json_scope: dict[str, str] = {}
    wait_for_match(lambda: problems_with(api, expected, json_scope), APPEAR_TIMEOUT, f"OTLP/JSON metrics via {listener}")
