//! Durations in Go's `time.ParseDuration` syntax, as SPIRE's config uses them: a sequence of
//! decimal numbers, each with an optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`,
//! `m`, `h`), such as `24h`, `1h30m`, `90s` or `1.5h`. A bare `0` is zero.

use std::time::Duration;

/// Go's largest duration, `math.MaxInt64` nanoseconds (about 292 years).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a Go duration. Negative durations are refused: no setting in sigil takes one.
///
/// The error is a reason for a message ("is not a duration (use e.g. 24h, 30m, 90s)").
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let not_a_duration = || format!("{text:?} is not a duration (use e.g. 24h, 30m, 90s)");
    let mut rest = text;
    if let Some(unsigned) = rest.strip_prefix('+') {
        rest = unsigned;
    } else if rest.starts_with('-') {
        return Err(format!(
            "{text:?} is negative; a duration here must be positive"
        ));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(not_a_duration());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let frac_len = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(frac_len)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(not_a_duration());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => {
                return Err(format!(
                    "{text:?} has a number without a unit (use e.g. 24h, 30m, 90s)"
                ));
            }
            _ => return Err(not_a_duration()),
        };
        let too_large = || format!("{text:?} is too large a duration");
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| too_large())?
        };
        let mut part = whole.checked_mul(unit_nanos).ok_or_else(too_large)?;
        // The fraction, exactly: digits beyond nanosecond precision cannot matter.
        let frac_digits = &frac_part[..frac_part.len().min(20)];
        if !frac_digits.is_empty() {
            let numerator: u128 = frac_digits.parse().map_err(|_| not_a_duration())?;
            let scale = 10u128.pow(u32::try_from(frac_digits.len()).unwrap_or(20));
            part += numerator * unit_nanos / scale;
        }
        total = total.checked_add(part).ok_or_else(too_large)?;
        if total > MAX_NANOS {
            return Err(too_large());
        }
        rest = after;
    }
    let secs =
        u64::try_from(total / 1_000_000_000).map_err(|_| format!("{text:?} is too large"))?;
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// Parses a positive duration that is a whole number of seconds, as SPIRE's TTL settings are.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let duration = parse_go_duration(text)?;
    if duration.is_zero() {
        return Err(format!("{text:?} is zero; a TTL must be positive"));
    }
    if duration.subsec_nanos() != 0 {
        return Err(format!(
            "{text:?} is not a whole number of seconds; TTLs have second precision"
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_syntax() {
        let ok = [
            ("24h", 86_400_000_000_000u128),
            ("1h30m", 5_400_000_000_000),
            ("90s", 90_000_000_000),
            ("300ms", 300_000_000),
            ("1.5h", 5_400_000_000_000),
            ("0", 0),
            ("+5m", 300_000_000_000),
            ("2h45m30.5s", 9_930_500_000_000),
            ("1us", 1_000),
            ("1µs", 1_000),
            (".5s", 500_000_000),
            ("7ns", 7),
        ];
        for (text, nanos) in ok {
            assert_eq!(parse_go_duration(text).unwrap().as_nanos(), nanos, "{text}");
        }
        for bad in [
            "", "3x", "1", "h", "1h-2m", "-1h", "1.h.", "1d", "..5s", " 1h", "1e3s",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(
            parse_go_duration("9999999999h")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn ttls_are_whole_positive_seconds() {
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert!(
            parse_ttl("1500ms")
                .unwrap_err()
                .contains("whole number of seconds")
        );
        assert!(parse_ttl("0s").unwrap_err().contains("zero"));
        assert!(parse_ttl("3x").unwrap_err().contains("is not a duration"));
    }
}
