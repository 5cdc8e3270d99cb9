//! Attribute values and numbers as Prometheus label text.

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};

/// `pcommon.Value.AsString()`: strings as-is, numbers in JavaScript (ES6) notation,
/// bytes as base64, arrays and maps as JSON.
pub(crate) fn any_value_string(value: &AnyValue) -> String {
    match &value.value {
        // String-table references exist only in the profiling signal.
        None | Some(any_value::Value::StringValueStrindex(_)) => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => es6_number(*d),
        Some(any_value::Value::BytesValue(b)) => base64(b),
        Some(any_value::Value::ArrayValue(_)) | Some(any_value::Value::KvlistValue(_)) => {
            any_value_json(value).to_string()
        }
    }
}

fn any_value_json(value: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &value.value {
        None | Some(any_value::Value::StringValueStrindex(_)) => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => J::from(*d),
        Some(any_value::Value::BytesValue(b)) => J::String(base64(b)),
        Some(any_value::Value::ArrayValue(array)) => {
            J::Array(array.values.iter().map(any_value_json).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => J::Object(
            list.values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().map_or(J::Null, any_value_json);
                    (kv.key.clone(), v)
                })
                .collect(),
        ),
    }
}

/// Go's ES6-style float formatting of `pcommon` (`1e+21`, `1e-7`, else plain).
fn es6_number(value: f64) -> String {
    if !value.is_finite() {
        return format_float(value);
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        let text = format!("{value:e}");
        return match text.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                format!("{mantissa}e+{exponent}")
            }
            _ => text,
        };
    }
    format!("{value}")
}

/// Shortest round-trip decimal without exponent (Go `FormatFloat(f, 'f', -1, 64)`),
/// `+Inf`/`-Inf`/`NaN` as Prometheus writes them.
pub(crate) fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{value}")
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    // `chunks(3)` never yields an empty chunk, so `chunk[0]` exists.
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, symbol) in symbols.iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[*symbol as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_strings_match_pcommon() {
        let v = |value| AnyValue { value: Some(value) };
        assert_eq!(any_value_string(&v(any_value::Value::IntValue(-5))), "-5");
        assert_eq!(
            any_value_string(&v(any_value::Value::BoolValue(true))),
            "true"
        );
        assert_eq!(
            any_value_string(&v(any_value::Value::DoubleValue(1.5))),
            "1.5"
        );
        assert_eq!(
            any_value_string(&v(any_value::Value::DoubleValue(1e21))),
            "1e+21"
        );
        assert_eq!(
            any_value_string(&v(any_value::Value::DoubleValue(1e-7))),
            "1e-7"
        );
        assert_eq!(
            any_value_string(&v(any_value::Value::DoubleValue(100.0))),
            "100"
        );
        assert_eq!(
            any_value_string(&v(any_value::Value::BytesValue(b"hello".to_vec()))),
            "aGVsbG8="
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        let array =
            any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: vec![
                    v(any_value::Value::StringValue("a".into())),
                    v(any_value::Value::IntValue(1)),
                ],
            });
        assert_eq!(any_value_string(&v(array)), r#"["a",1]"#);
    }

    #[test]
    fn float_formatting() {
        assert_eq!(format_float(0.005), "0.005");
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(1e-7), "0.0000001");
    }
}
