//! Human-friendly durations (`30s`, `5m`, `1h`, `250ms`) and sizes (`64KiB`, `1MiB`, `512`).
//!
//! Invariant: parsing never panics and never overflows; a value that does not fit is an error
//! with a message that names the accepted forms.

use std::time::Duration;

const DURATION_FORMS: &str = "use forms like 250ms, 30s, 1.5s, 5m, 1m30s, 1h";

/// Parses a duration: one or more `<number><unit>` terms, largest unit first, where the
/// unit is `h`, `m`, `s` or `ms` and the number is an integer or a decimal (`1.5s`,
/// `1m30s`, `1h30m`, `2s500ms`). The result must be a whole number of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let not_a_duration = || format!("`{text}` is not a duration; {DURATION_FORMS}");
    if text.is_empty() {
        return Err(not_a_duration());
    }
    let mut rest = text;
    // Micro-milliseconds (1/1000 ms) so that decimals are exact: `1.5s` is 1,500,000.
    let mut total: u128 = 0;
    let mut last_unit = u128::MAX;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let per_unit: u128 = match unit {
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            "" if !number.is_empty() => {
                return Err(format!("`{text}` has no unit; {DURATION_FORMS}"))
            }
            _ if number.is_empty() => return Err(not_a_duration()),
            _ => return Err(format!("`{text}` has no known unit; {DURATION_FORMS}")),
        };
        // `1m30s`, not `30s1m` or `1m1m`: each term in a smaller unit than the last.
        if per_unit >= last_unit {
            return Err(format!(
                "`{text}`: write each unit once, largest first; {DURATION_FORMS}"
            ));
        }
        last_unit = per_unit;
        total = total
            .checked_add(scaled(number, per_unit).ok_or_else(not_a_duration)?)
            .ok_or_else(|| format!("`{text}` is too large"))?;
        rest = tail;
    }
    if !total.is_multiple_of(1_000) {
        return Err(format!("`{text}` is finer than a millisecond"));
    }
    u64::try_from(total / 1_000)
        .map(Duration::from_millis)
        .map_err(|_| format!("`{text}` is too large"))
}

/// `number` (digits, optionally one `.` and more digits) times `per_unit`, exactly when
/// the fraction allows; `None` for a malformed number or an overflow.
fn scaled(number: &str, per_unit: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
        return None;
    }
    if fraction.len() > 9 || fraction.contains('.') {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let mut value = whole.checked_mul(per_unit)?;
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().ok()?;
        let scale = 10u128.pow(fraction.len() as u32);
        value = value.checked_add(digits.checked_mul(per_unit)? / scale)?;
    }
    Some(value)
}

/// Parses `<integer>[B|KiB|MiB|GiB]` (binary units; `KB`/`MB` are accepted as the same).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size; use forms like 512, 64KiB, 1MiB"))?;
    let multiplier: usize = match unit {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        _ => {
            return Err(format!(
                "`{text}` has no known unit; use forms like 512, 64KiB, 1MiB"
            ))
        }
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Renders a size the way the config accepts it (for messages and docs).
pub fn format_size(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{}KiB", n >> 10)
    } else {
        n.to_string()
    }
}

/// Renders a duration the way the config accepts it (for messages and docs).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2s500ms"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("0.25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0.5m"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("0.5ms").unwrap_err().contains("finer"));
        assert!(parse_duration("30s1m")
            .unwrap_err()
            .contains("largest first"));
        assert!(parse_duration("1s1s").is_err());
        assert!(parse_duration("1.s").is_err());
        assert!(parse_duration(".5s").is_err());
        assert!(parse_duration("1..5s").is_err());
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration("1m 30s").is_err());
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("30d").unwrap_err().contains("no known unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("64 KiB").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("1TiB").is_err());
    }

    #[test]
    fn sizes_format_as_they_are_written() {
        for text in ["8KiB", "1MiB", "512", "1536"] {
            assert_eq!(format_size(parse_size(text).unwrap()), text);
        }
    }

    #[test]
    fn format_round_trips() {
        for text in ["30s", "5m", "1h", "250ms", "0s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
