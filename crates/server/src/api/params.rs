//! Request parameters the way Prometheus reads them: URL query and (for POST)
//! `application/x-www-form-urlencoded` body merged like Go's `r.Form`, times as RFC 3339
//! or Unix seconds, limits, durations and series selectors, with Prometheus' error
//! wording (`invalid parameter "start": ...`).

use axum::http::{HeaderMap, Uri, header};
use promql_parser::label::{MatchOp as PromMatchOp, Matchers as PromMatchers};
use promql_parser::parser::{Expr, VectorSelector};
use sightline_model::METRIC_NAME_LABEL;
use sightline_tsdb::{MatchOp, Matcher};

use crate::error::ApiError;

/// Parameters of one request: body values first, then URL values, as Go's `r.Form`.
#[derive(Debug, Default)]
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Reads the URL query and, when the body is a urlencoded form, the body.
    pub(crate) fn from_request(
        headers: &HeaderMap,
        uri: &Uri,
        body: &[u8],
    ) -> Result<Form, ApiError> {
        let mut form = Form::default();
        let body_is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                sightline_ingest::media_type(value) == "application/x-www-form-urlencoded"
            });
        let parse_error = |e: String| ApiError::bad_data(format!("error parsing form values: {e}"));
        if body_is_form && !body.is_empty() {
            form.extend_from_urlencoded(body).map_err(parse_error)?;
        }
        if let Some(query) = uri.query() {
            form.extend_from_urlencoded(query.as_bytes())
                .map_err(parse_error)?;
        }
        Ok(form)
    }

    #[cfg(test)]
    pub(crate) fn from_query(query: &str) -> Result<Form, String> {
        let mut form = Form::default();
        form.extend_from_urlencoded(query.as_bytes())?;
        Ok(form)
    }

    fn extend_from_urlencoded(&mut self, input: &[u8]) -> Result<(), String> {
        for piece in input.split(|byte| *byte == b'&') {
            if piece.is_empty() {
                continue;
            }
            if piece.contains(&b';') {
                return Err("invalid semicolon separator in query".to_string());
            }
            let (key, value) = match piece.iter().position(|byte| *byte == b'=') {
                Some(at) => (&piece[..at], &piece[at + 1..]),
                None => (piece, &piece[piece.len()..]),
            };
            self.pairs
                .push((percent_decode(key)?, percent_decode(value)?));
        }
        Ok(())
    }

    /// The first value of `name`, `None` when absent or empty (Go's `FormValue` == "").
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// Every value of a repeated parameter such as `match[]`, in order.
    pub(crate) fn values(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

fn percent_decode(input: &[u8]) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(input.len());
    let mut index = 0;
    while index < input.len() {
        match input[index] {
            b'+' => {
                bytes.push(b' ');
                index += 1;
            }
            b'%' => {
                let high = input.get(index + 1).and_then(|b| (*b as char).to_digit(16));
                let low = input.get(index + 2).and_then(|b| (*b as char).to_digit(16));
                let (Some(high), Some(low)) = (high, low) else {
                    let end = (index + 3).min(input.len());
                    return Err(format!(
                        "invalid URL escape {:?}",
                        String::from_utf8_lossy(&input[index..end])
                    ));
                };
                // Two hex digits are at most 0xff.
                bytes.push((high * 16 + low) as u8);
                index += 3;
            }
            other => {
                bytes.push(other);
                index += 1;
            }
        }
    }
    String::from_utf8(bytes).map_err(|_| "form value is not valid UTF-8".to_string())
}

/// `invalid parameter "<name>": <cause>`, Prometheus' `invalidParamError`.
pub(crate) fn invalid_param(name: &str, cause: impl std::fmt::Display) -> ApiError {
    ApiError::bad_data(format!("invalid parameter {name:?}: {cause}"))
}

/// Milliseconds since the epoch that stand for "no bound" (Prometheus' `MinTime`/`MaxTime`
/// are far outside any real data; ours are the ends of the nanosecond range).
pub(crate) const MIN_TIME_MILLIS: i64 = i64::MIN / 1_000_000;
pub(crate) const MAX_TIME_MILLIS: i64 = i64::MAX / 1_000_000;

/// A time parameter in milliseconds, `default` when absent; errors worded like
/// Prometheus' `parseTimeParam`.
pub(crate) fn time_param(form: &Form, name: &str, default: i64) -> Result<i64, ApiError> {
    let Some(text) = form.value(name) else {
        return Ok(default);
    };
    parse_time_millis(text)
        .map_err(|cause| invalid_param(name, format!("Invalid time value for '{name}': {cause}")))
}

/// Prometheus' `parseTime`: Unix seconds with up to millisecond precision (rounded), or
/// RFC 3339 (truncated to milliseconds). Results outside the representable range are
/// clamped to it.
pub(crate) fn parse_time_millis(text: &str) -> Result<i64, String> {
    let cannot_parse = || format!("cannot parse {text:?} to a valid timestamp");
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() {
            return Err(cannot_parse());
        }
        let whole = seconds.trunc();
        let fraction_millis = ((seconds - whole) * 1000.0).round();
        let millis = whole * 1000.0 + fraction_millis;
        return Ok(clamp_millis_f64(millis));
    }
    parse_rfc3339_millis(text).ok_or_else(cannot_parse)
}

fn clamp_millis_f64(millis: f64) -> i64 {
    if millis <= MIN_TIME_MILLIS as f64 {
        MIN_TIME_MILLIS
    } else if millis >= MAX_TIME_MILLIS as f64 {
        MAX_TIME_MILLIS
    } else {
        millis as i64
    }
}

/// Most digits of an RFC 3339 year: Go formats the largest `time.Time` with twelve
/// (`292277026596-12-04T15:30:07Z`), and twelve keep every computation below far
/// inside `i128` (|year| < 1e12, so days < 4e14 and milliseconds < 4e22): nothing can
/// overflow.
const MAX_YEAR_DIGITS: usize = 12;

/// `[-]YYYY...-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; years may have more than four
/// digits (up to [`MAX_YEAR_DIGITS`]) and a sign so Prometheus' own
/// `MinTime`/`MaxTime` strings parse.
fn parse_rfc3339_millis(text: &str) -> Option<i64> {
    let (negative_year, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let year_end = rest.find('-')?;
    if !(4..=MAX_YEAR_DIGITS).contains(&year_end)
        || !rest[..year_end].bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let year: i128 = rest[..year_end].parse().ok()?;
    let year = if negative_year { -year } else { year };
    let rest = &rest.as_bytes()[year_end..];
    // "-MM-DDTHH:MM:SS" is 15 bytes.
    if rest.len() < 15
        || rest[0] != b'-'
        || rest[3] != b'-'
        || rest[6] != b'T'
        || rest[9] != b':'
        || rest[12] != b':'
    {
        return None;
    }
    let two_digits = |at: usize| -> Option<i128> {
        let (a, b) = (rest[at], rest[at + 1]);
        if a.is_ascii_digit() && b.is_ascii_digit() {
            Some(i128::from((a - b'0') * 10 + (b - b'0')))
        } else {
            None
        }
    };
    let (month, day) = (two_digits(1)?, two_digits(4)?);
    let (hour, minute, second) = (two_digits(7)?, two_digits(10)?, two_digits(13)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &rest[15..];
    let mut nanos: i128 = 0;
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let digits = after_dot.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        for (position, digit) in after_dot[..digits].iter().enumerate() {
            nanos += i128::from(digit - b'0') * 10i128.pow(8 - position as u32);
        }
        rest = &after_dot[digits..];
    }
    let offset_seconds: i128 = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let hours = i128::from((h1 - b'0') * 10 + (h2 - b'0'));
            let minutes = i128::from((m1 - b'0') * 10 + (m2 - b'0'));
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = hours * 3600 + minutes * 60;
            if *sign == b'+' { magnitude } else { -magnitude }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    // Go's timestamp.FromTime: seconds*1000 + nanoseconds/1e6 with nanoseconds >= 0.
    let millis = seconds * 1000 + nanos / 1_000_000;
    Some(millis.clamp(i128::from(MIN_TIME_MILLIS), i128::from(MAX_TIME_MILLIS)) as i64)
}

fn is_leap_year(year: i128) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i128, month: i128) -> i128 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12; // March = 0
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Prometheus' `parseLimitParam`: absent = 0 = no limit; negative is an error.
pub(crate) fn limit_param(form: &Form) -> Result<usize, ApiError> {
    let Some(text) = form.value("limit") else {
        return Ok(0);
    };
    let limit = go_atoi(text).map_err(|cause| invalid_param("limit", cause))?;
    if limit < 0 {
        return Err(invalid_param("limit", "limit must be non-negative"));
    }
    Ok(usize::try_from(limit).unwrap_or(usize::MAX))
}

/// Go's `strconv.Atoi` with its error wording.
pub(crate) fn go_atoi(text: &str) -> Result<i64, String> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {text:?}: invalid syntax"));
    }
    text.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {text:?}: value out of range"))
}

/// Prometheus' `parseDuration`: float seconds or a duration like `5m`.
pub(crate) fn parse_duration_millis(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        let millis = seconds * 1000.0;
        if !millis.is_finite() || millis.abs() >= (i64::MAX / 1_000_000) as f64 {
            return Err(format!(
                "cannot parse {text:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(millis as i64);
    }
    promql_parser::util::parse_duration(text)
        .ok()
        .and_then(|duration| i64::try_from(duration.as_millis()).ok())
        .ok_or_else(|| format!("cannot parse {text:?} to a valid duration"))
}

/// A selector's matchers as store matcher sets: one set, or one per `or` alternative
/// (`{a="1" or b="2"}`); a series matches when it matches all matchers of any set.
pub(crate) fn selector_matcher_sets(
    selector: &VectorSelector,
) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let PromMatchers {
        matchers,
        or_matchers,
    } = &selector.matchers;
    let groups: Vec<&Vec<promql_parser::label::Matcher>> = if or_matchers.is_empty() {
        vec![matchers]
    } else {
        or_matchers.iter().collect()
    };
    let mut sets = Vec::with_capacity(groups.len());
    for group in groups {
        let mut set = Vec::with_capacity(group.len() + 1);
        if let Some(name) = &selector.name {
            set.push(store_matcher(MatchOp::Equal, METRIC_NAME_LABEL, name)?);
        }
        for matcher in group {
            let op = match &matcher.op {
                PromMatchOp::Equal => MatchOp::Equal,
                PromMatchOp::NotEqual => MatchOp::NotEqual,
                PromMatchOp::Re(_) => MatchOp::RegexMatch,
                PromMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
            };
            set.push(store_matcher(op, &matcher.name, &matcher.value)?);
        }
        sets.push(set);
    }
    Ok(sets)
}

fn store_matcher(op: MatchOp, name: &str, value: &str) -> Result<Matcher, ApiError> {
    Matcher::new(op, name, value).map_err(|e| ApiError::bad_data(e.to_string()))
}

/// Parses one `match[]` value, which must be a plain series selector (no offset, no `@`).
pub(crate) fn parse_series_selector(text: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let expr = promql_parser::parser::parse(text)?;
    let Expr::VectorSelector(selector) = expr else {
        return Err(format!(
            "{text:?} is not a series selector (expected e.g. up{{job=\"api\"}})"
        ));
    };
    if selector.offset.is_some() || selector.at.is_some() {
        return Err(format!(
            "{text:?} is not a series selector: offset and @ are not allowed here"
        ));
    }
    let all_match_empty = selector.name.is_none()
        && selector
            .matchers
            .matchers
            .iter()
            .chain(selector.matchers.or_matchers.iter().flatten())
            .all(|m| m.is_match(""));
    if all_match_empty {
        return Err("match[] must contain at least one non-empty matcher".to_string());
    }
    selector_matcher_sets(&selector).map_err(|e| e.message)
}

/// Every `match[]` value parsed: the union of all their matcher sets.
pub(crate) fn match_param(form: &Form) -> Result<Vec<Vec<Matcher>>, String> {
    let mut sets = Vec::new();
    for text in form.values("match[]") {
        sets.extend(parse_series_selector(text)?);
    }
    Ok(sets)
}

/// Undoes Prometheus 3's `U__` value-encoding escape of a label name
/// (`U__http_2e_method` → `http.method`, `__` → `_`). A name that is not a valid
/// escape is returned unchanged, as `model.UnescapeName` does.
pub(crate) fn unescape_label_name(name: &str) -> String {
    let Some(escaped) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars().peekable();
    while let Some(character) = chars.next() {
        if character != '_' {
            if !(character.is_ascii_alphanumeric() || character == ':') {
                return name.to_string();
            }
            out.push(character);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next() {
                Some('_') => break,
                Some(digit) if digit.is_ascii_hexdigit() && hex.len() < 8 => hex.push(digit),
                _ => return name.to_string(),
            }
        }
        let decoded = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
        match decoded {
            Some(decoded) => out.push(decoded),
            None => return name.to_string(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_merges_and_repeats() {
        let form = Form::from_query("match%5B%5D=up&match[]=a%7Bb%3D%22c%22%7D&x=a+b&e=").unwrap();
        assert_eq!(form.values("match[]"), vec!["up", "a{b=\"c\"}"]);
        assert_eq!(form.value("x"), Some("a b"));
        assert_eq!(form.value("e"), None);
        assert!(
            Form::from_query("a=%zz")
                .unwrap_err()
                .contains("invalid URL escape")
        );
    }

    #[test]
    fn times_parse_like_prometheus() {
        assert_eq!(parse_time_millis("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time_millis("1700000000.123"), Ok(1_700_000_000_123));
        assert_eq!(parse_time_millis("1700000000.1236"), Ok(1_700_000_000_124));
        assert_eq!(parse_time_millis("-1.5"), Ok(-1_500));
        assert_eq!(parse_time_millis("1e9"), Ok(1_000_000_000_000));
        assert_eq!(
            parse_time_millis("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time_millis("2015-07-01T22:10:51.7819+02:00"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(parse_time_millis("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_time_millis("2000-02-29T00:00:00Z"),
            Ok(951_782_400_000)
        );
        assert!(parse_time_millis("2001-02-29T00:00:00Z").is_err());
        assert!(parse_time_millis("2015-07-01 20:10:51Z").is_err());
        assert_eq!(
            parse_time_millis("abc"),
            Err("cannot parse \"abc\" to a valid timestamp".to_string())
        );
        assert!(parse_time_millis("NaN").is_err());
        assert_eq!(
            parse_time_millis("-292273086-05-16T16:47:06Z"),
            Ok(MIN_TIME_MILLIS)
        );
        assert_eq!(
            parse_time_millis("292277026596-12-04T15:30:07.999999999Z"),
            Ok(MAX_TIME_MILLIS)
        );
    }

    #[test]
    fn time_param_error_wording() {
        let form = Form::from_query("start=abc").unwrap();
        let error = time_param(&form, "start", 0).unwrap_err();
        assert_eq!(
            error.message,
            "invalid parameter \"start\": Invalid time value for 'start': cannot parse \"abc\" to a valid timestamp"
        );
    }

    #[test]
    fn limits_and_durations() {
        assert_eq!(limit_param(&Form::from_query("").unwrap()).unwrap(), 0);
        assert_eq!(
            limit_param(&Form::from_query("limit=5").unwrap()).unwrap(),
            5
        );
        assert_eq!(
            limit_param(&Form::from_query("limit=x").unwrap())
                .unwrap_err()
                .message,
            "invalid parameter \"limit\": strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            limit_param(&Form::from_query("limit=-1").unwrap())
                .unwrap_err()
                .message,
            "invalid parameter \"limit\": limit must be non-negative"
        );
        assert_eq!(parse_duration_millis("5m"), Ok(300_000));
        assert_eq!(parse_duration_millis("1.5"), Ok(1_500));
        assert!(parse_duration_millis("five").is_err());
    }

    #[test]
    fn selectors_become_matcher_sets() {
        let sets = parse_series_selector(r#"up{job="api",instance=~"a.*"}"#).unwrap();
        assert_eq!(sets.len(), 1);
        let names: Vec<&str> = sets[0].iter().map(|m| m.name()).collect();
        assert_eq!(names, vec!["__name__", "job", "instance"]);
        assert!(matches!(sets[0][2].op(), MatchOp::RegexMatch));

        let sets = parse_series_selector(r#"{job="a" or job="b"}"#).unwrap();
        assert_eq!(sets.len(), 2);

        assert!(parse_series_selector("up + 1").is_err());
        assert!(parse_series_selector("up offset 5m").is_err());
        assert!(parse_series_selector(r#"{job=~".*"}"#).is_err());
        assert!(parse_series_selector("up{").is_err());
    }

    #[test]
    fn unescapes_utf8_label_names() {
        assert_eq!(unescape_label_name("job"), "job");
        assert_eq!(unescape_label_name("U__http_2e_method"), "http.method");
        assert_eq!(unescape_label_name("U__a__b"), "a_b");
        assert_eq!(unescape_label_name("U__caf_e9_"), "café");
        assert_eq!(unescape_label_name("U__bad_zz_"), "U__bad_zz_");
    }

    #[test]
    fn huge_years_are_refused_not_overflowed() {
        for text in [
            "99999999999999999999999999999999999-01-01T00:00:00Z",
            "-99999999999999999999999999999999999-01-01T00:00:00Z",
            "170141183460469231731687303715884105727-01-01T00:00:00Z",
            "9999999999999-12-31T23:59:59.999999999+23:59",
        ] {
            assert_eq!(
                parse_time_millis(text),
                Err(format!("cannot parse {text:?} to a valid timestamp"))
            );
        }
        // Twelve digits still parse (clamped), as do Prometheus' MinTime/MaxTime.
        assert_eq!(
            parse_time_millis("999999999999-12-31T23:59:59.999999999-23:59"),
            Ok(MAX_TIME_MILLIS)
        );
        assert_eq!(
            parse_time_millis("-999999999999-01-01T00:00:00+23:59"),
            Ok(MIN_TIME_MILLIS)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn random_time_strings_never_panic(text in "\\PC{0,40}") {
            let _ = parse_time_millis(&text);
        }

        #[test]
        fn random_rfc3339_like_strings_never_panic(
            sign in "[-+]?",
            year in "[0-9]{1,45}",
            rest in "-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[-+][0-9]{2}:[0-9]{2})",
        ) {
            let text = format!("{sign}{year}{rest}");
            if let Ok(millis) = parse_time_millis(&text) {
                proptest::prop_assert!((MIN_TIME_MILLIS..=MAX_TIME_MILLIS).contains(&millis));
            }
        }
    }
}
