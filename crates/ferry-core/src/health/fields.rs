//! Lenient readers for the JSON of live objects: a missing, null or mistyped field
//! reads as absent, never as a panic.

use serde_json::Value;

/// The value at `path`, `None` when any step is missing or the value is null.
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// The string at `path`.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

/// The string at `path`, empty when absent.
pub(crate) fn string_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    str_at(v, path).unwrap_or_default()
}

/// The integer at `path`. Numeric strings count too: Argo Rollouts writes
/// `status.observedGeneration` as a string.
pub(crate) fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    match at(v, path)? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Whether the value at `path` is the boolean `true`.
pub(crate) fn bool_at(v: &Value, path: &[&str]) -> bool {
    matches!(at(v, path), Some(Value::Bool(true)))
}

/// The array at `path`, empty when absent or not an array.
pub(crate) fn array_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// One entry of a `status.conditions` list.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Condition<'a> {
    pub ty: &'a str,
    pub status: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
}

impl<'a> Condition<'a> {
    /// Reads a condition from its JSON (or from a v1 HPA annotation entry).
    pub(crate) fn from_value(v: &'a Value) -> Self {
        Self {
            ty: string_at(v, &["type"]),
            status: string_at(v, &["status"]),
            reason: string_at(v, &["reason"]),
            message: string_at(v, &["message"]),
        }
    }

    /// Whether `status` is `"True"`.
    pub(crate) fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// The object's `status.conditions`, in order.
pub(crate) fn conditions(v: &Value) -> impl Iterator<Item = Condition<'_>> + Clone {
    array_at(v, &["status", "conditions"])
        .iter()
        .map(Condition::from_value)
}

/// The first condition of type `ty`.
pub(crate) fn condition<'a>(v: &'a Value, ty: &str) -> Option<Condition<'a>> {
    conditions(v).find(|c| c.ty == ty)
}

/// Parses an RFC 3339 timestamp (`2024-05-01T10:00:00Z`, with optional fraction and
/// numeric offset) into Unix seconds.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, min, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = frac.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = rest.get(1..)?;
            let (h, m) = hm.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let h: i64 = h.parse().ok()?;
            let m: i64 = m.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_rfc3339_with_fraction_and_offset() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(
            parse_time("2024-02-29T12:00:00.123456Z"),
            Some(1_709_208_000)
        );
        assert_eq!(parse_time("2024-02-29T14:00:00+02:00"), Some(1_709_208_000));
        assert_eq!(parse_time("2024-02-29T07:00:00-05:00"), Some(1_709_208_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("2024-01-01T00:00:00"), None);
    }

    #[test]
    fn integers_read_from_numbers_and_numeric_strings() {
        let v = json!({"a": 3, "b": "5", "c": "x", "d": 2.0, "e": null});
        assert_eq!(int_at(&v, &["a"]), Some(3));
        assert_eq!(int_at(&v, &["b"]), Some(5));
        assert_eq!(int_at(&v, &["c"]), None);
        assert_eq!(int_at(&v, &["d"]), Some(2));
        assert_eq!(int_at(&v, &["e"]), None);
        assert_eq!(int_at(&v, &["missing", "deeper"]), None);
    }
}
