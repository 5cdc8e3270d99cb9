//! Floats printed as Go's `strconv.FormatFloat` prints them with the shortest
//! precision (-1), which is how Prometheus writes them: in `count_values` labels and
//! annotations here, in sample values of the query API.
//!
//! Rust's `{}` and `{:e}` find the same shortest digit count, but where two digit
//! strings of that length are equally near the binary value (it lies exactly halfway
//! between them), Go takes the even one and Rust the upper: `1406667743765118.25` is
//! `1406667743765118.2` in Go, `1406667743765118.3` in Rust.

/// Go's `%g` / `strconv.FormatFloat(v, 'g', -1, 64)`: shortest digits, exponent
/// form (`1e+06`, `1.5e-05`) when the exponent is below -4 or at least 6, and
/// `NaN`, `+Inf`, `-Inf`. Prometheus formats annotation values this way.
pub fn go_format_float(value: f64) -> String {
    if value.is_nan() || value.is_infinite() || value == 0.0 {
        return go_format_float_fixed(value);
    }
    let (digits, exponent) = go_shortest_decimal(value.abs());
    if (-4..6).contains(&exponent) {
        return go_format_float_fixed(value);
    }
    exponent_form(value, &digits, exponent)
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: the shortest digits that read back as
/// `value` in exponent form (`1e-07`, `1.5e+21`, `-2.5e+300`), and `NaN`, `+Inf`,
/// `-Inf`. Prometheus' query API prints sample values this way below 1e-6 and from
/// 1e21 on.
pub fn go_format_float_exponent(value: f64) -> String {
    if value.is_nan() || value.is_infinite() {
        return go_format_float_fixed(value);
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0e+00"
        } else {
            "0e+00"
        }
        .to_owned();
    }
    let (digits, exponent) = go_shortest_decimal(value.abs());
    exponent_form(value, &digits, exponent)
}

fn exponent_form(value: f64, digits: &str, exponent: i32) -> String {
    let sign = if value < 0.0 { "-" } else { "" };
    let (first, rest) = digits.split_at(1);
    let point = if rest.is_empty() { "" } else { "." };
    let exponent_sign = if exponent < 0 { '-' } else { '+' };
    format!(
        "{sign}{first}{point}{rest}e{exponent_sign}{:02}",
        exponent.unsigned_abs()
    )
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest digits that read back
/// as `value`, never an exponent, and `NaN`, `+Inf`, `-Inf`. Prometheus formats
/// `count_values` labels (and its API's sample values) this way.
pub fn go_format_float_fixed(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Between 1e-5 and 1e16 ryu writes the same shortest digits in fixed notation
    // (`123.45`, `0.001`, `1234.0`): Go's form but for the `.0` of whole numbers. The
    // query API formats every sample value here.
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value);
    if !text.contains('e') {
        return text.strip_suffix(".0").unwrap_or(text).to_owned();
    }
    let (digits, exponent) = go_shortest_decimal(value.abs());
    let sign = if value < 0.0 { "-" } else { "" };
    // Digits before the decimal point.
    let integer_digits = exponent + 1;
    if integer_digits <= 0 {
        let zeros = "0".repeat(integer_digits.unsigned_abs() as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let integer_digits = integer_digits.unsigned_abs() as usize;
    if integer_digits >= digits.len() {
        let zeros = "0".repeat(integer_digits - digits.len());
        return format!("{sign}{digits}{zeros}");
    }
    let (integer, fraction) = digits.split_at(integer_digits);
    format!("{sign}{integer}.{fraction}")
}

/// The shortest decimal digits that read back as `magnitude` (finite, above zero)
/// and the decimal exponent of the first digit, as Go's `strconv` picks them.
///
/// Go's shortest formatting is Ryu's algorithm, as is the `ryu` crate's: where two
/// digit strings of the shortest length are equally near the binary value (it lies
/// exactly halfway), both take the even one, where Rust's `{}` takes the upper
/// (`1406667743765118.25` is `…118.2` in Go, `…118.3` in Rust's `{}`). The query API
/// formats every sample value through here, so it must be cheap.
fn go_shortest_decimal(magnitude: f64) -> (String, i32) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(magnitude);
    let (mantissa, power) = match text.split_once('e') {
        Some((mantissa, power)) => (mantissa, power.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = String::with_capacity(integer.len() + fraction.len());
    digits.push_str(integer);
    digits.push_str(fraction);
    let leading_zeros = digits.bytes().take_while(|b| *b == b'0').count();
    let significant = digits[leading_zeros..].trim_end_matches('0');
    if significant.is_empty() {
        return ("0".to_owned(), 0);
    }
    // Both lengths are at most a few dozen characters.
    let exponent = power + integer.len() as i32 - 1 - leading_zeros as i32;
    (significant.to_owned(), exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The former implementation, kept as the oracle (exact but slow: two of Rust's
    /// formattings per value).
    fn reference_shortest_decimal(magnitude: f64) -> (String, i32) {
        let shortest = format!("{magnitude:e}");
        let mantissa = shortest
            .split_once('e')
            .map_or(shortest.as_str(), |(m, _)| m);
        let length = mantissa.chars().filter(char::is_ascii_digit).count().max(1);
        let exact = format!("{magnitude:.*e}", length - 1);
        let (mantissa, exponent) = exact.split_once('e').unwrap_or((exact.as_str(), "0"));
        let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
        (digits, exponent.parse().unwrap_or(0))
    }

    proptest::proptest! {
        #[test]
        fn shortest_digits_agree_with_the_exact_reference(bits in proptest::num::u64::ANY) {
            let value = f64::from_bits(bits).abs();
            if value.is_finite() && value > 0.0 {
                proptest::prop_assert_eq!(
                    go_shortest_decimal(value),
                    reference_shortest_decimal(value)
                );
            }
        }

        /// The fixed form from ryu's own fixed notation agrees with the one built
        /// from the shortest digits.
        #[test]
        fn fixed_form_fast_path_agrees(mantissa in -1_000_000_000_000i64..1_000_000_000_000, scale in -6i32..20) {
            let value = mantissa as f64 / 10f64.powi(scale);
            let slow = if value == 0.0 {
                go_format_float_fixed(value)
            } else {
                let (digits, exponent) = reference_shortest_decimal(value.abs());
                let sign = if value < 0.0 { "-" } else { "" };
                let integer_digits = exponent + 1;
                if integer_digits <= 0 {
                    format!("{sign}0.{}{digits}", "0".repeat(integer_digits.unsigned_abs() as usize))
                } else if integer_digits as usize >= digits.len() {
                    format!("{sign}{digits}{}", "0".repeat(integer_digits as usize - digits.len()))
                } else {
                    let (integer, fraction) = digits.split_at(integer_digits as usize);
                    format!("{sign}{integer}.{fraction}")
                }
            };
            proptest::prop_assert_eq!(go_format_float_fixed(value), slow);
        }

        /// Values as counters and gauges hold them: integers and short decimals.
        #[test]
        fn shortest_digits_of_everyday_values(mantissa in 1i64..1_000_000_000_000, scale in 0i32..20) {
            let value = mantissa as f64 / 10f64.powi(scale);
            proptest::prop_assert_eq!(
                go_shortest_decimal(value),
                reference_shortest_decimal(value)
            );
        }
    }

    #[test]
    fn go_float_formatting() {
        let cases = [
            (1.01, "1.01"),
            (-0.1, "-0.1"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (123456.0, "123456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-1.5e-7, "-1.5e-07"),
            (1e100, "1e+100"),
        ];
        for (value, expected) in cases {
            assert_eq!(go_format_float(value), expected);
        }
    }

    /// Found by the differential test against Prometheus: a value exactly halfway between
    /// two shortest digit strings (here 1406667743765118.25, whose 17-digit neighbours
    /// …118.2 and …118.3 both read back as it) is printed with the even digit by Go and
    /// with the upper one by Rust's `{}`.
    #[test]
    fn go_float_formatting_breaks_ties_to_even() {
        let tie: f64 = "1406667743765118.25".parse().unwrap();
        assert_eq!(format!("{tie}"), "1406667743765118.3");
        assert_eq!(go_format_float_fixed(tie), "1406667743765118.2");
        assert_eq!(go_format_float(tie), "1.4066677437651182e+15");
        let smallest = format!("0.{}5", "0".repeat(323));
        let cases = [
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e23, "100000000000000000000000"),
            (1.5e-7, "0.00000015"),
            (123456789012345680.0, "123456789012345680"),
            (1.0 / 3.0, "0.3333333333333333"),
            (5e-324, smallest.as_str()),
            (-0.0, "-0"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (value, expected) in cases {
            assert_eq!(go_format_float_fixed(value), expected, "{value:e}");
        }
    }

    #[test]
    fn exponent_form_as_in_go() {
        let tie: f64 = "1406667743765118.25".parse().unwrap();
        let cases = [
            (tie, "1.4066677437651182e+15"),
            (1.5e-7, "1.5e-07"),
            (1e21, "1e+21"),
            (-2.5e300, "-2.5e+300"),
            (5e-324, "5e-324"),
            (0.0, "0e+00"),
            (f64::NAN, "NaN"),
        ];
        for (value, expected) in cases {
            assert_eq!(go_format_float_exponent(value), expected, "{value:e}");
        }
    }
}
