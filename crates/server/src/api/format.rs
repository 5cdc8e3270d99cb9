//! Byte-for-byte Prometheus JSON output: sample values and timestamps the way
//! `util/jsonutil` writes them, strings escaped the way Go's `encoding/json` does, and
//! the `{"status":"success","data":...}` envelope in Prometheus' key order.
//!
//! Written by hand (into a `String`) rather than through `serde_json::Value` because
//! Prometheus prints `1700000000.120` and `1700000000` where a float serializer prints
//! `1700000000.12` and `1700000000.0`, and because the key order of the envelope matters
//! to the eye of anyone diffing us against a real Prometheus.

use std::fmt::Write as _;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sightline_model::Labels;
use sightline_promql::{go_format_float_exponent, go_format_float_fixed};

/// A sample value as Prometheus prints it inside quotes: Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)`, switching to `'e'` below 1e-6 and from 1e21
/// on, with `NaN`, `+Inf` and `-Inf` for the special values. The digits are Go's
/// too: where a value lies exactly halfway between two shortest digit strings, Go
/// takes the even one, Rust's `{}` the upper.
pub(crate) fn format_sample_value(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude.is_finite() && magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        return go_format_float_exponent(value);
    }
    go_format_float_fixed(value)
}

/// A millisecond timestamp as Prometheus prints it: seconds, with a three-digit
/// fraction only when the milliseconds are not zero (`1700000000.120`, `1700000000`).
pub(crate) fn write_timestamp(out: &mut String, millis: i64) {
    if millis < 0 {
        out.push('-');
    }
    let magnitude = millis.unsigned_abs();
    let seconds = magnitude / 1000;
    let fraction = magnitude % 1000;
    // Writing into a String cannot fail.
    let _ = write!(out, "{seconds}");
    if fraction != 0 {
        let _ = write!(out, ".{fraction:03}");
    }
}

/// A JSON string literal escaped like Go's `encoding/json` (HTML-safe): `<`, `>`, `&`,
/// U+2028 and U+2029 become `\u` escapes, control characters `\u00xx` except `\n`,
/// `\r`, `\t`.
pub(crate) fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(character));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A label set as a JSON object, names in sorted order (the order of [`Labels`]).
pub(crate) fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (index, label) in labels.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_json_string(out, &label.name);
        out.push(':');
        write_json_string(out, &label.value);
    }
    out.push('}');
}

/// A JSON array of strings.
pub(crate) fn write_string_array<S: AsRef<str>>(out: &mut String, items: &[S]) {
    out.push('[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_json_string(out, item.as_ref());
    }
    out.push(']');
}

/// `[<unix seconds>,"<value>"]`, the point of an instant vector, scalar or string.
pub(crate) fn write_point(out: &mut String, millis: i64, value: &str) {
    out.push('[');
    write_timestamp(out, millis);
    out.push(',');
    write_json_string(out, value);
    out.push(']');
}

/// The success envelope around already-serialized `data`, with `warnings` when any.
pub(crate) fn success_response(data_json: &str, warnings: &[String]) -> Response {
    annotated_success_response(data_json, warnings, &[])
}

/// The success envelope with PromQL's annotations: `warnings` and `infos` at the top
/// level, each only when not empty (Prometheus' `omitempty`).
pub(crate) fn annotated_success_response(
    data_json: &str,
    warnings: &[String],
    infos: &[String],
) -> Response {
    let mut body = String::with_capacity(data_json.len() + 64);
    body.push_str(r#"{"status":"success","data":"#);
    body.push_str(data_json);
    for (key, annotations) in [("warnings", warnings), ("infos", infos)] {
        if annotations.is_empty() {
            continue;
        }
        body.push_str(",\"");
        body.push_str(key);
        body.push_str("\":");
        write_string_array(&mut body, annotations);
    }
    body.push('}');
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_values_match_go() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (123456789.0, "123456789"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (1e-6, "0.000001"),
            (1e-7, "1e-07"),
            (-2.5e-10, "-2.5e-10"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.30000000000000004, "0.30000000000000004"),
            // Found by the differential test against Prometheus: this float is exactly
            // 1406667743765118.25, halfway between ...118.2 and ...118.3, and Go prints
            // the even digit (Rust's `{}` prints ...118.3).
            (1_406_667_743_765_118.2, "1406667743765118.2"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_sample_value(*value), *expected, "value {value:e}");
        }
    }

    #[test]
    fn timestamps_match_jsonutil() {
        let render = |millis| {
            let mut out = String::new();
            write_timestamp(&mut out, millis);
            out
        };
        assert_eq!(render(1_700_000_000_123), "1700000000.123");
        assert_eq!(render(1_700_000_000_120), "1700000000.120");
        assert_eq!(render(1_700_000_000_005), "1700000000.005");
        assert_eq!(render(1_700_000_000_000), "1700000000");
        assert_eq!(render(-1_500), "-1.500");
        assert_eq!(render(0), "0");
        assert_eq!(render(i64::MIN), "-9223372036854775.808");
    }

    #[test]
    fn strings_escape_like_go() {
        let mut out = String::new();
        write_json_string(&mut out, "a\"b\\c\n<tag>&\u{1}\u{2028}é");
        assert_eq!(out, r#""a\"b\\c\n\u003ctag\u003e\u0026\u0001\u2028é""#);
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\n<tag>&\u{1}\u{2028}é");
    }

    #[test]
    fn labels_render_sorted() {
        let labels = Labels::from_pairs([("job", "api"), ("__name__", "up")]);
        let mut out = String::new();
        write_labels(&mut out, &labels);
        assert_eq!(out, r#"{"__name__":"up","job":"api"}"#);
    }
}
