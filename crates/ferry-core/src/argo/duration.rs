//! Go durations (`5s`, `1h30m`, `1.5h`, `300ms`), as Argo writes them.

use std::time::Duration;

/// Parses a Go duration as `time.ParseDuration` does: one or more decimal numbers, each
/// with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `5s`, `3m`, `1h2m`, `1.5h`,
/// `.5s`; a bare `0` is zero. Returns `None` for anything else, including negative
/// durations (which have no use in Argo specs) and values that overflow.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        // The number: digits, optionally a '.' and more digits; at least one digit.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        // The unit: everything up to the next digit or '.'.
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return None,
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        total = total.checked_add(int.checked_mul(nanos_per_unit)?)?;
        // Fractions are exact to the nanosecond, truncated beyond it, as Go does.
        let mut scale = nanos_per_unit;
        let mut frac_nanos: u128 = 0;
        for d in frac_part.bytes().take(30) {
            scale /= 10;
            if scale == 0 {
                break;
            }
            frac_nanos += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(frac_nanos)?;
        // Go caps durations at about 292 years (i64 nanoseconds).
        if total > i64::MAX as u128 {
            return None;
        }
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).ok()?;
    Some(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Parses a value that Argo reads as whole seconds when it is a bare integer (`"30"`)
/// and as a Go duration otherwise (`"30s"`), as retry back-off durations and pause
/// durations are.
pub fn parse_seconds_or_duration(s: &str) -> Option<Duration> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok().map(Duration::from_secs);
    }
    parse_duration(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn units_and_combinations() {
        assert_eq!(parse_duration("5s"), ms(5_000));
        assert_eq!(parse_duration("3m"), ms(180_000));
        assert_eq!(parse_duration("1h2m"), ms(3_720_000));
        assert_eq!(parse_duration("1h2m3s4ms"), ms(3_723_004));
        assert_eq!(parse_duration("300ms"), ms(300));
        assert_eq!(parse_duration("10us"), Some(Duration::from_micros(10)));
        assert_eq!(parse_duration("10µs"), Some(Duration::from_micros(10)));
        assert_eq!(parse_duration("10μs"), Some(Duration::from_micros(10)));
        assert_eq!(parse_duration("7ns"), Some(Duration::from_nanos(7)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("+5s"), ms(5_000));
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_duration("1.5h"), ms(5_400_000));
        assert_eq!(parse_duration(".5s"), ms(500));
        assert_eq!(parse_duration("1.s"), ms(1_000));
        assert_eq!(parse_duration("2.25m"), ms(135_000));
        assert_eq!(parse_duration("1.0000000001s"), Some(Duration::new(1, 0)));
        assert_eq!(parse_duration("1.000000001s"), Some(Duration::new(1, 1)));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "", "5", "s", "1x", "1 s", "-5s", "1h-2m", ".s", "1..5s", "5S", "1d", "h1", "++1s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(
            parse_duration("2562047h"),
            Some(Duration::from_secs(2_562_047 * 3600))
        );
        assert_eq!(parse_duration("2562048h"), None);
        assert_eq!(
            parse_duration("99999999999999999999999999999999999999999h"),
            None
        );
    }

    #[test]
    fn seconds_or_duration() {
        assert_eq!(parse_seconds_or_duration("30"), ms(30_000));
        assert_eq!(parse_seconds_or_duration("30s"), ms(30_000));
        assert_eq!(parse_seconds_or_duration("1m"), ms(60_000));
        assert_eq!(parse_seconds_or_duration("thirty"), None);
        assert_eq!(parse_seconds_or_duration(""), None);
    }
}
