//! OTLP/JSON decoding on top of opentelemetry-proto's serde support, with two fixes.
//!
//! opentelemetry-proto (`with-serde`) reads canonical OTLP/JSON as the SDKs write it:
//! camelCase names, 64-bit integers as strings or numbers, enums as integers, hex trace
//! and span ids. Two gaps remain, both from serde's `flatten` on protobuf `oneof`s:
//!
//! 1. a data point value written as the proto3-JSON strings `"NaN"`, `"Infinity"`,
//!    `"-Infinity"` (or any numeric string) is silently read as "no value". We rewrite
//!    such `asDouble` values before decoding and patch the exact value back afterwards;
//! 2. any error inside a metric's data (`gauge`, `sum`, ...) is swallowed and the metric
//!    arrives with no data at all. We detect that case, decode the part again on its
//!    own to get serde's message, and report it as [`Error::BadJson`] with its path.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, Sum, Summary, metric::Data, number_data_point,
};
use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

const DATA_KEYS: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];

/// Where one rewritten `asDouble` lives and its real value.
#[derive(Debug)]
struct Patch {
    resource: usize,
    scope: usize,
    metric: usize,
    point: usize,
    value: f64,
}

pub(crate) fn decode(body: &[u8]) -> Result<ExportMetricsServiceRequest> {
    let bad = |e: serde_json::Error| Error::BadJson(e.to_string());
    let mut json: Value = serde_json::from_slice(body).map_err(bad)?;
    let patches = rewrite_string_doubles(&mut json);
    let mut request = ExportMetricsServiceRequest::deserialize(&json).map_err(bad)?;
    check_swallowed_errors(&json, &request)?;
    for patch in patches {
        let point = request
            .resource_metrics
            .get_mut(patch.resource)
            .and_then(|r| r.scope_metrics.get_mut(patch.scope))
            .and_then(|s| s.metrics.get_mut(patch.metric))
            .and_then(|m| match &mut m.data {
                Some(Data::Gauge(g)) => g.data_points.get_mut(patch.point),
                Some(Data::Sum(s)) => s.data_points.get_mut(patch.point),
                _ => None,
            });
        if let Some(point) = point {
            point.value = Some(number_data_point::Value::AsDouble(patch.value));
        }
    }
    Ok(request)
}

fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn items_mut<'a>(value: &'a mut Value, key: &str) -> &'a mut [Value] {
    value
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .map_or(&mut [], Vec::as_mut_slice)
}

/// Replaces string `asDouble`s of gauge and sum points by `0` and returns their values.
fn rewrite_string_doubles(json: &mut Value) -> Vec<Patch> {
    let mut patches = Vec::new();
    for (resource, resource_json) in items_mut(json, "resourceMetrics").iter_mut().enumerate() {
        for (scope, scope_json) in items_mut(resource_json, "scopeMetrics")
            .iter_mut()
            .enumerate()
        {
            for (metric, metric_json) in items_mut(scope_json, "metrics").iter_mut().enumerate() {
                for key in ["gauge", "sum"] {
                    let Some(data) = metric_json.get_mut(key) else {
                        continue;
                    };
                    for (point, point_json) in items_mut(data, "dataPoints").iter_mut().enumerate()
                    {
                        let Some(slot) = point_json.get_mut("asDouble") else {
                            continue;
                        };
                        let Some(value) = slot.as_str().and_then(parse_json_double) else {
                            continue;
                        };
                        *slot = Value::from(0.0);
                        patches.push(Patch {
                            resource,
                            scope,
                            metric,
                            point,
                            value,
                        });
                    }
                }
            }
        }
    }
    patches
}

/// proto3 JSON doubles written as strings.
fn parse_json_double(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        other => other.trim().parse().ok(),
    }
}

/// Finds metrics whose JSON has data but that decoded without any, and reports why.
fn check_swallowed_errors(json: &Value, request: &ExportMetricsServiceRequest) -> Result<()> {
    let resources = items(json, "resourceMetrics");
    for (r, (resource_json, resource)) in
        resources.iter().zip(&request.resource_metrics).enumerate()
    {
        let scopes = items(resource_json, "scopeMetrics");
        for (s, (scope_json, scope)) in scopes.iter().zip(&resource.scope_metrics).enumerate() {
            let metrics = items(scope_json, "metrics");
            for (m, (metric_json, metric)) in metrics.iter().zip(&scope.metrics).enumerate() {
                if metric.data.is_some() {
                    continue;
                }
                for key in DATA_KEYS {
                    let Some(data) = metric_json.get(key) else {
                        continue;
                    };
                    let problem = match key {
                        "gauge" => Gauge::deserialize(data).err(),
                        "sum" => Sum::deserialize(data).err(),
                        "histogram" => Histogram::deserialize(data).err(),
                        "exponentialHistogram" => ExponentialHistogram::deserialize(data).err(),
                        _ => Summary::deserialize(data).err(),
                    };
                    let problem = problem
                        .map_or_else(|| "it could not be decoded".to_string(), |e| e.to_string());
                    return Err(Error::BadJson(format!(
                        "resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}] ({:?}).{key}: {problem}",
                        metric.name
                    )));
                }
            }
        }
    }
    Ok(())
}
