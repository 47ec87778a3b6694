//! Durations as Istio accepts them in YAML: Go's `time.ParseDuration` syntax (`7s`, `1.5s`, `100ms`, `1m30s`).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{0}`: expected a number with a unit (h, m, s, ms, us, ns), e.g. `7s` or `100ms`")]
pub struct DurationError(pub String);

/// The largest `seconds` a `google.protobuf.Duration` may hold.
pub const MAX_PROTOBUF_SECONDS: u64 = 315_576_000_000;

pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError(text.to_owned());
    let mut rest = text.trim();
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => return Err(bad()),
        };
        // Checked: a well-typed string can repeat huge numbers until a u128 overflows.
        total_nanos = decimal_times(number, unit_nanos)
            .and_then(|n| total_nanos.checked_add(n))
            .ok_or_else(bad)?;
        rest = tail;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| bad())?;
    // protobuf's Duration (what Envoy receives) caps seconds at 315,576,000,000 (10,000 years).
    if secs > MAX_PROTOBUF_SECONDS {
        return Err(bad());
    }
    Ok(Duration::new(secs, (total_nanos % 1_000_000_000) as u32))
}

/// `number` (digits with at most one dot) times `unit_nanos`, exact to the nanosecond.
fn decimal_times(number: &str, unit_nanos: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut value = int.checked_mul(unit_nanos)?;
    let mut scale = unit_nanos;
    for digit in frac.chars() {
        scale /= 10;
        value = value.checked_add(u128::from(digit.to_digit(10)?) * scale)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("7s"), Ok(Duration::from_secs(7)));
        assert_eq!(parse("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_overflowing_durations_without_panicking() {
        let huge = "340282366920938463463374607431768211455ns";
        assert!(parse(&format!("{huge}{huge}")).is_err());
        assert!(parse(&format!("{huge}h")).is_err());
        assert!(parse("0.99999999999999999999999999999999999999999h").is_ok());
        assert!(parse("315576000001s").is_err());
        assert_eq!(
            parse("315576000000s"),
            Ok(Duration::from_secs(MAX_PROTOBUF_SECONDS))
        );
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in ["", "7", "-1s", "7 s", "1x", "s", "1..5s", "1.5.5s"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
