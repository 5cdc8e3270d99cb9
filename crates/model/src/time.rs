//! Conversions between Sightline's internal nanoseconds and the units APIs use.

use std::time::Duration;

/// Nanoseconds since the Unix epoch.
pub type Timestamp = i64;

pub const NANOS_PER_MILLI: i64 = 1_000_000;
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Milliseconds (Prometheus remote_write, OpenMetrics) to nanoseconds, saturating.
pub fn from_millis(ms: i64) -> Timestamp {
    ms.saturating_mul(NANOS_PER_MILLI)
}

/// Nanoseconds to milliseconds, rounding toward negative infinity.
pub fn to_millis(ts: Timestamp) -> i64 {
    ts.div_euclid(NANOS_PER_MILLI)
}

/// Fractional seconds (Prometheus HTTP API) to nanoseconds; `None` when not finite
/// or out of the representable range.
pub fn from_seconds_f64(seconds: f64) -> Option<Timestamp> {
    if !seconds.is_finite() {
        return None;
    }
    let nanos = (seconds * NANOS_PER_SECOND as f64).round();
    if nanos < i64::MIN as f64 || nanos > i64::MAX as f64 {
        return None;
    }
    Some(nanos as i64)
}

/// Nanoseconds to fractional seconds, as the Prometheus API prints them.
pub fn to_seconds_f64(ts: Timestamp) -> f64 {
    ts as f64 / NANOS_PER_SECOND as f64
}

/// Wall-clock now.
pub fn now() -> Timestamp {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01 (proleptic
/// Gregorian; H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses a duration like `30s`, `15d`, `1h30m` or `10ms` (Prometheus' units: ms, s, m,
/// h, d, w, y).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("duration is empty".to_string());
    }
    let bad = || format!("{text:?} is not a duration like 30s, 10m, 2h, 15d or 1h30m");
    let mut total_ms: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits_end == 0 {
            return Err(bad());
        }
        let number: u128 = rest[..digits_end].parse().map_err(|_| bad())?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u128 = match &rest[..unit_end] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_end..];
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|part| total_ms.checked_add(part))
            .ok_or_else(bad)?;
    }
    let total_ms = u64::try_from(total_ms).map_err(|_| bad())?;
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way [`parse_duration`] reads it, largest units first.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let units: [(&str, u128); 6] = [
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut out = String::new();
    for (unit, size) in units {
        // Weeks only when the whole duration is a number of weeks, so 15d stays 15d.
        if unit == "w" && !ms.is_multiple_of(size) {
            continue;
        }
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn civil_dates_of_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    use super::*;

    #[test]
    fn millis_round_trip() {
        assert_eq!(to_millis(from_millis(1_700_000_000_123)), 1_700_000_000_123);
        assert_eq!(to_millis(-1), -1);
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(from_seconds_f64(1.5), Some(1_500_000_000));
        assert_eq!(from_seconds_f64(f64::NAN), None);
        assert_eq!(from_seconds_f64(1e30), None);
    }
}
