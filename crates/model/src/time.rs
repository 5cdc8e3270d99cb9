//! Conversions between Sightline's internal nanoseconds and the units APIs use.

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

#[cfg(test)]
mod tests {
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
