//! OTLP → Prometheus names, as Prometheus' `otlptranslator` builds them with
//! `translation_strategy: UnderscoreEscapingWithSuffixes` (the Prometheus 3.x default):
//! `MetricNamer{WithMetricSuffixes: true, UTF8Allowed: false}`, `LabelNamer{UTF8Allowed:
//! false}` and `UnitNamer`. Source: github.com/prometheus/otlptranslator
//! (`metric_namer.go`, `label_namer.go`, `unit_namer.go`, `strconv.go`).

/// The translator's view of a metric's kind, which decides the suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    ExponentialHistogram,
    Summary,
}

/// OTel (UCUM) unit → Prometheus unit word (`unitMap`, legacy mapping as used by
/// `UnderscoreEscapingWithSuffixes`).
fn main_unit(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The unit after `/` → Prometheus word (`perUnitMap`).
fn per_unit(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// `isValidCompliantMetricChar`: the characters kept inside metric name tokens.
fn is_metric_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// `buildUnitSuffixes`: (main suffix, `per_` suffix); annotations (`{packet}`) and
/// blank parts give nothing.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let main_suffix = if !main.is_empty() && !main.contains(['{', '}']) {
        main_unit(main).to_string()
    } else {
        String::new()
    };
    let mut per_suffix = String::new();
    if let Some(per) = parts.next().filter(|p| !p.is_empty()) {
        let per = per.trim();
        if !per.is_empty() && !per.contains(['{', '}']) {
            per_suffix = per_unit(per).to_string();
        }
        if !per_suffix.is_empty() {
            per_suffix = format!("per_{per_suffix}");
        }
    }
    (main_suffix, per_suffix)
}

/// `cleanUpUnit`: invalid characters → `_`, runs of `_` collapsed, one leading `_`
/// removed.
fn clean_up_unit(unit: &str) -> String {
    let mut cleaned = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_token_char(c) { c } else { '_' };
        if c == '_' && cleaned.ends_with('_') {
            continue;
        }
        cleaned.push(c);
    }
    match cleaned.strip_prefix('_') {
        Some(rest) => rest.to_string(),
        None => cleaned,
    }
}

/// `addUnitTokens`.
fn add_unit_tokens(tokens: &mut Vec<String>, main_suffix: String, per_suffix: String) {
    let mut main_suffix = main_suffix;
    if tokens.contains(&main_suffix) {
        main_suffix.clear();
    }
    let mut per_suffix = if per_suffix == "per_" {
        String::new()
    } else {
        let trimmed = per_suffix
            .strip_suffix('_')
            .unwrap_or(&per_suffix)
            .to_string();
        if tokens.contains(&trimmed) {
            String::new()
        } else {
            trimmed
        }
    };
    if !per_suffix.is_empty()
        && let Some(stripped) = main_suffix.strip_suffix('_')
    {
        main_suffix = stripped.to_string();
    }
    if !main_suffix.is_empty() {
        tokens.push(main_suffix);
    }
    if !per_suffix.is_empty() {
        tokens.push(std::mem::take(&mut per_suffix));
    }
}

/// The Prometheus metric family name of an OTLP metric (`normalizeName` plus the
/// validity checks of `buildCompliantMetricName`); `None` when nothing valid is left.
pub(crate) fn metric_name(name: &str, unit: &str, kind: NameKind) -> Option<String> {
    let mut tokens: Vec<String> = name
        .split(|c: char| !is_metric_token_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let (main_suffix, per_suffix) = unit_suffixes(unit);
    add_unit_tokens(
        &mut tokens,
        clean_up_unit(&main_suffix),
        clean_up_unit(&per_suffix),
    );
    if kind == NameKind::MonotonicCounter {
        tokens.retain(|t| t != "total");
        tokens.push("total".to_string());
    }
    // Unit "1" gets `_ratio` for gauges only (some receivers misuse "1" for counts).
    if unit == "1" && kind == NameKind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".to_string());
    }
    let mut normalized = tokens.join("_");
    if normalized.starts_with(|c: char| c.is_ascii_digit()) {
        normalized.insert(0, '_');
    }
    if normalized.is_empty() {
        return None;
    }
    if normalized != name && normalized.chars().all(|c| c == '_') {
        return None;
    }
    Some(normalized)
}

/// The Prometheus label name of an OTLP attribute key (`LabelNamer.Build`): invalid
/// characters → `_`, a leading digit gets `key_`, a single leading `_` gets `key`
/// (`__` is kept). `None` when the key is empty or becomes only underscores.
pub(crate) fn label_name(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut normalized: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if normalized.starts_with(|c: char| c.is_ascii_digit()) {
        normalized.insert_str(0, "key_");
    } else if normalized.starts_with('_') && !normalized.starts_with("__") {
        normalized.insert_str(0, "key");
    }
    if normalized != key && normalized.chars().all(|c| c == '_') {
        return None;
    }
    Some(normalized)
}

/// The Prometheus unit word of an OTel unit (`UnitNamer.Build`): `ms` →
/// `milliseconds`, `By/s` → `bytes_per_second`, `1` → empty. Used for metadata.
pub(crate) fn unit_name(unit: &str) -> String {
    let (main_suffix, per_suffix) = unit_suffixes(unit);
    let (main_suffix, per_suffix) = (clean_up_unit(&main_suffix), clean_up_unit(&per_suffix));
    let joined = match (main_suffix.is_empty(), per_suffix.is_empty()) {
        (false, false) => format!("{main_suffix}_{per_suffix}"),
        (false, true) => main_suffix,
        _ => per_suffix,
    };
    let joined = joined.strip_prefix('_').unwrap_or(&joined);
    joined.strip_suffix('_').unwrap_or(joined).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values are those of otlptranslator's metric_namer_test.go /
    // label_namer_test.go for UnderscoreEscapingWithSuffixes.
    #[test]
    fn metric_names_follow_prometheus() {
        let cases = [
            (
                "http.server.requests",
                "{request}",
                NameKind::MonotonicCounter,
                "http_server_requests_total",
            ),
            (
                "http.server.duration",
                "ms",
                NameKind::Histogram,
                "http_server_duration_milliseconds",
            ),
            (
                "system.filesystem.usage",
                "By",
                NameKind::Gauge,
                "system_filesystem_usage_bytes",
            ),
            (
                "system.cpu.utilization",
                "1",
                NameKind::Gauge,
                "system_cpu_utilization_ratio",
            ),
            (
                "requests.count",
                "1",
                NameKind::MonotonicCounter,
                "requests_count_total",
            ),
            (
                "queue.depth",
                "1",
                NameKind::NonMonotonicCounter,
                "queue_depth",
            ),
            (
                "network.io",
                "By/s",
                NameKind::Gauge,
                "network_io_bytes_per_second",
            ),
            (
                "network.packets",
                "{packet}/s",
                NameKind::Gauge,
                "network_packets_per_second",
            ),
            (
                "requests_total",
                "",
                NameKind::MonotonicCounter,
                "requests_total",
            ),
            ("foo__bar", "", NameKind::Gauge, "foo_bar"),
            ("2xx.count", "", NameKind::Gauge, "_2xx_count"),
            (
                "latency_seconds",
                "s",
                NameKind::Histogram,
                "latency_seconds",
            ),
            ("temperature", "Cel", NameKind::Gauge, "temperature_celsius"),
            ("free", "%", NameKind::Gauge, "free_percent"),
            (
                "unit.custom",
                "widgets",
                NameKind::Gauge,
                "unit_custom_widgets",
            ),
            (
                "throughput",
                "km/h",
                NameKind::Gauge,
                "throughput_km_per_hour",
            ),
            ("ns:metric", "", NameKind::Summary, "ns:metric"),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(
                metric_name(name, unit, kind).as_deref(),
                Some(want),
                "{name} {unit}"
            );
        }
        assert_eq!(metric_name("", "", NameKind::Gauge), None);
        assert_eq!(metric_name("...", "", NameKind::Gauge), None);
    }

    #[test]
    fn label_names_follow_prometheus() {
        let cases = [
            ("http.method", "http_method"),
            ("123invalid", "key_123invalid"),
            ("_private", "key_private"),
            ("__reserved__", "__reserved__"),
            ("host.name", "host_name"),
            ("déjà", "d_j_"),
            ("a-b c", "a_b_c"),
        ];
        for (key, want) in cases {
            assert_eq!(label_name(key).as_deref(), Some(want), "{key}");
        }
        assert_eq!(label_name(""), None);
        assert_eq!(label_name(".."), None);
        assert_eq!(label_name(".").as_deref(), Some("key_"));
    }

    #[test]
    fn unit_names() {
        assert_eq!(unit_name("ms"), "milliseconds");
        assert_eq!(unit_name("By/s"), "bytes_per_second");
        assert_eq!(unit_name("1"), "");
        assert_eq!(unit_name("{request}"), "");
        assert_eq!(unit_name("{packet}/s"), "per_second");
    }
}
