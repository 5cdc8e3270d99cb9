//! Series descriptions of the promqltest format: `metric{a="b"} 1 2+3x4 _ stale`.
//!
//! Values follow Prometheus' expanding notation: `a+bxn` / `a-bxn` give n+1 values
//! starting at `a`, `axn` repeats `a` n+1 times, `_` is a missing value, `_xn` is n
//! missing values, `stale` is a staleness marker. Native histogram samples
//! (`{{...}}`, optionally `{{...}}xn` or `{{...}}+{{...}}xn`) are recognised and
//! counted as positions but not decoded: the engine under test is float-only.

use std::sync::LazyLock;

use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use sightline_model::{Labels, STALE_NAN_BITS};

/// One position of an expanded sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SeqValue {
    Omitted,
    Float(f64),
    /// A native histogram sample (not decoded).
    Histogram,
}

/// A parsed series line: labels and expanded values.
#[derive(Debug, Clone)]
pub(crate) struct SeriesDesc {
    pub(crate) labels: Labels,
    pub(crate) values: Vec<SeqValue>,
}

/// Parses `metric{labels} values...`.
pub(crate) fn parse_series_line(line: &str) -> Result<SeriesDesc, String> {
    let line = line.trim();
    let split = metric_end(line)?;
    let (metric, values) = line.split_at(split);
    let labels = parse_labels(metric.trim())?;
    let values = parse_values(values.trim())?;
    Ok(SeriesDesc { labels, values })
}

/// Byte index where the metric part (name and optional `{...}`) ends.
fn metric_end(line: &str) -> Result<usize, String> {
    let bytes = line.as_bytes();
    let mut index = 0;
    while index < bytes.len() && bytes[index] != b'{' && !bytes[index].is_ascii_whitespace() {
        index += 1;
    }
    if index >= bytes.len() || bytes[index] != b'{' {
        return Ok(index);
    }
    // Scan to the closing brace, skipping quoted strings.
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for (offset, &byte) in bytes[index..].iter().enumerate() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == q {
                quote = None;
            }
            continue;
        }
        match byte {
            b'"' | b'\'' | b'`' => quote = Some(byte),
            b'}' => return Ok(index + offset + 1),
            _ => {}
        }
    }
    Err(format!("unterminated label set in {line:?}"))
}

/// Parses `metric{a="b"}`, `{a="b"}`, `{}` or `metric` into a label set.
pub(crate) fn parse_labels(metric: &str) -> Result<Labels, String> {
    let compact: String = metric.chars().filter(|c| !c.is_whitespace()).collect();
    if compact == "{}" || compact.is_empty() {
        return Ok(Labels::empty());
    }
    let expr = promql_parser::parser::parse(metric)
        .map_err(|error| format!("bad series {metric:?}: {error}"))?;
    let Expr::VectorSelector(selector) = expr else {
        return Err(format!("bad series {metric:?}: not a selector"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(name) = selector.name {
        pairs.push(("__name__".to_string(), name));
    }
    for matcher in selector.matchers.matchers {
        if !matches!(matcher.op, MatchOp::Equal) {
            return Err(format!("bad series {metric:?}: only = matchers allowed"));
        }
        pairs.push((matcher.name, matcher.value));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Splits a value list into items at whitespace outside `{...}`.
fn value_items(values: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start: Option<usize> = None;
    for (index, ch) in values.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if ch.is_whitespace() && depth == 0 {
            if let Some(s) = start.take() {
                items.push(&values[s..index]);
            }
        } else if start.is_none() {
            start = Some(index);
        }
    }
    if let Some(s) = start {
        items.push(&values[s..]);
    }
    items
}

const NUMBER: &str =
    r"(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN])";

static ITEM: LazyLock<regex::Regex> = LazyLock::new(|| {
    let pattern = format!(r"^([+-]?{NUMBER})(?:([+-]){NUMBER})?(?:x([0-9]+))?$");
    // The pattern is a constant; a failure is a bug of this file found by the first run.
    regex::Regex::new(&pattern).unwrap_or_else(|error| panic!("bad item regex: {error}"))
});

/// Parses the values part of a series line.
pub(crate) fn parse_values(values: &str) -> Result<Vec<SeqValue>, String> {
    let mut out = Vec::new();
    for item in value_items(values) {
        expand_item(item, &mut out)?;
    }
    Ok(out)
}

fn expand_item(item: &str, out: &mut Vec<SeqValue>) -> Result<(), String> {
    if item == "_" {
        out.push(SeqValue::Omitted);
        return Ok(());
    }
    if let Some(count) = item.strip_prefix("_x") {
        let count: usize = count.parse().map_err(|_| format!("bad item {item:?}"))?;
        out.extend(std::iter::repeat_n(SeqValue::Omitted, count));
        return Ok(());
    }
    if item == "stale" {
        out.push(SeqValue::Float(f64::from_bits(STALE_NAN_BITS)));
        return Ok(());
    }
    if item.starts_with("{{") {
        let tail = &item[item.rfind("}}").map_or(item.len(), |i| i + 2)..];
        let repeat = match tail.strip_prefix('x') {
            Some(count) => {
                count
                    .parse::<usize>()
                    .map_err(|_| format!("bad item {item:?}"))?
                    + 1
            }
            None if tail.is_empty() => 1,
            None => return Err(format!("bad histogram item {item:?}")),
        };
        out.extend(std::iter::repeat_n(SeqValue::Histogram, repeat));
        return Ok(());
    }
    let captures = ITEM
        .captures(item)
        .ok_or_else(|| format!("bad value {item:?}"))?;
    let start = parse_number(&captures[1]).ok_or_else(|| format!("bad value {item:?}"))?;
    let step_text = captures.get(2).map(|sign| {
        let end = captures
            .get(3)
            .map_or(item.len(), |count| count.start() - 1);
        format!("{}{}", sign.as_str(), &item[sign.end()..end])
    });
    let step = match &step_text {
        Some(text) => Some(parse_number(text).ok_or_else(|| format!("bad value {item:?}"))?),
        None => None,
    };
    let Some(count) = captures.get(3) else {
        if step.is_some() {
            return Err(format!("step without count in {item:?}"));
        }
        out.push(SeqValue::Float(start));
        return Ok(());
    };
    let count: usize = count
        .as_str()
        .parse()
        .map_err(|_| format!("bad count in {item:?}"))?;
    let mut value = start;
    for _ in 0..=count {
        out.push(SeqValue::Float(value));
        if let Some(step) = step {
            value += step;
        }
    }
    Ok(())
}

/// Go's `strconv.ParseInt(s, 0, 64)` then `ParseFloat(s, 64)`, as promqltest's `parseNumber`.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let signed = |v: f64| if negative { -v } else { v };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok().map(|v| signed(v as f64));
    }
    let lower = body.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "infinity" => return Some(signed(f64::INFINITY)),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || b"._eE+-".contains(&b))
    {
        return None;
    }
    body.replace('_', "").parse::<f64>().ok().map(signed)
}

/// Prometheus' duration syntax (`1h30m`, `10s53ms`, `0`), in milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(0);
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if body.is_empty() {
        return Err(format!("bad duration {text:?}"));
    }
    if let Ok(seconds) = body.parse::<f64>() {
        let ms = (seconds * 1000.0).round() as i64;
        return Ok(if negative { -ms } else { ms });
    }
    // Units (`1h30m`) read as everywhere else in Sightline.
    let total = sightline_model::time::parse_duration(body)
        .map_err(|e| format!("bad duration: {e}"))?
        .as_millis();
    let total = i64::try_from(total).map_err(|_| format!("duration {text:?} is too long"))?;
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(values: &[SeqValue]) -> Vec<Option<f64>> {
        values
            .iter()
            .map(|v| match v {
                SeqValue::Float(f) => Some(*f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn expanding_notation() {
        let v = parse_values("1 2+3x2 _ 0-1x2 4x1 _x2 1e-6 -Inf").unwrap();
        assert_eq!(
            floats(&v),
            vec![
                Some(1.0),
                Some(2.0),
                Some(5.0),
                Some(8.0),
                None,
                Some(0.0),
                Some(-1.0),
                Some(-2.0),
                Some(4.0),
                Some(4.0),
                None,
                None,
                Some(1e-6),
                Some(f64::NEG_INFINITY)
            ]
        );
        let v = parse_values("{{schema:0 sum:1 buckets:[1 2]}}x2 1 {{a:1}}+{{a:2}}x1").unwrap();
        assert_eq!(v.iter().filter(|v| **v == SeqValue::Histogram).count(), 5);
        assert_eq!(v[3], SeqValue::Float(1.0));
        assert_eq!(parse_duration_ms("10s53ms").unwrap(), 10_053);
        assert_eq!(parse_duration_ms("1m30s").unwrap(), 90_000);
        let s = parse_series_line(r#"foo{a="x}y", b="c"} 1 stale"#).unwrap();
        assert_eq!(s.labels.get("a"), Some("x}y"));
        assert!(sightline_model::is_stale_nan(match s.values[1] {
            SeqValue::Float(f) => f,
            _ => 0.0,
        }));
    }
}
