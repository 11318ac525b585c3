//! Durations as a promise file writes them: `"30d"`, `"24h"`, `"15m"`, `"45s"`, or in words
//! (`"30 days"`, `"24 hours"`).

use std::time::Duration;

/// Parses a duration; `None` if it is not one (or overflows).
pub(crate) fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits == 0 {
        return None;
    }
    let number: u64 = text[..digits].parse().ok()?;
    let unit = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "second" | "seconds" => 1,
        "m" | "min" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    };
    number.checked_mul(unit).map(Duration::from_secs)
}

/// The shortest exact form: `30d`, `24h` is `1d`, `90m`, `45s`.
pub(crate) fn render(duration: Duration) -> String {
    let secs = duration.as_secs();
    for (unit, name) in [(86_400, "d"), (3600, "h"), (60, "m")] {
        if secs != 0 && secs.is_multiple_of(unit) {
            return format!("{}{name}", secs / unit);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_forms() {
        assert_eq!(parse("30d"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse("24 hours"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse("45s"), Some(Duration::from_secs(45)));
        assert_eq!(parse("1 day"), Some(Duration::from_secs(86_400)));
        for bad in [
            "",
            "d",
            "30",
            "30 weeks",
            "-1d",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn renders_what_it_reads() {
        for secs in [0, 1, 59, 60, 3600, 86_400, 90 * 60, 30 * 86_400, 86_401] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse(&render(d)), Some(d), "{secs}");
        }
        assert_eq!(render(Duration::from_secs(86_400)), "1d");
    }
}
