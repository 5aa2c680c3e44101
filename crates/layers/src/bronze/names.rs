//! Validation of the values that become bronze object paths. A value that could climb out of
//! the lake (`..`, `/`, `\`), hide (leading `.`), or confuse tools (control characters, `=`) is
//! refused with an error naming it.

use crate::error::{LayersError, Result};

fn check(kind: &'static str, value: &str, extra: &[char]) -> Result<()> {
    let bad = |problem: &str| LayersError::BronzeName {
        kind,
        value: value.escape_debug().to_string(),
        problem: problem.to_string(),
    };
    if value.is_empty() || value.len() > 200 {
        return Err(bad("must be 1 to 200 characters"));
    }
    if value.starts_with('.') {
        return Err(bad("must not start with `.`"));
    }
    if value.contains("..") {
        return Err(bad("must not contain `..`"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || extra.contains(c)))
    {
        return Err(bad(&format!(
            "character {:?} is not allowed (use letters, digits, `_`, `-`{})",
            c,
            if extra.is_empty() { "" } else { ", `.`" }
        )));
    }
    Ok(())
}

/// A source name such as `iot` or `postgres.shop.orders`.
pub fn validate_source(source: &str) -> Result<()> {
    check("source", source, &['.'])
}

/// A file name such as `p0-000000000000-000000000999.ndjson.zst`.
pub fn validate_name(name: &str) -> Result<()> {
    check("file name", name, &['.'])
}

/// A calendar date `YYYY-MM-DD` (the bronze partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BronzeDate {
    year: u16,
    month: u8,
    day: u8,
}

impl BronzeDate {
    /// Parses and checks a real calendar date.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |problem: &str| LayersError::BronzeName {
            kind: "date",
            value: text.escape_debug().to_string(),
            problem: problem.to_string(),
        };
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad("expected YYYY-MM-DD"));
        }
        let num = |r: std::ops::Range<usize>| {
            text.get(r)
                .and_then(|s| s.parse::<u16>().ok())
                .filter(|_| true)
        };
        let (Some(year), Some(month), Some(day)) = (num(0..4), num(5..7), num(8..10)) else {
            return Err(bad("expected YYYY-MM-DD"));
        };
        if !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        {
            return Err(bad("expected YYYY-MM-DD"));
        }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(bad("month must be 01-12")),
        };
        if day == 0 || day > days {
            return Err(bad("day does not exist in that month"));
        }
        Ok(BronzeDate {
            year,
            month: month as u8,
            day: day as u8,
        })
    }

    /// The UTC date of a timestamp in microseconds since the epoch.
    pub fn from_epoch_micros(micros: i64) -> Self {
        let text = strata_core::sample::iso_millis(micros.div_euclid(1000));
        // iso_millis always yields a valid YYYY-MM-DD prefix for representable times.
        Self::parse(&text[..10]).unwrap_or(BronzeDate {
            year: 1970,
            month: 1,
            day: 1,
        })
    }
}

impl BronzeDate {
    /// Milliseconds since the epoch at the start of the day (UTC).
    pub fn epoch_millis(&self) -> i64 {
        // Days from the civil date (H. Hinnant's algorithm), proleptic Gregorian.
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        (era * 146_097 + doe - 719_468) * 86_400_000
    }
}

impl std::fmt::Display for BronzeDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_its_first_millisecond() {
        assert_eq!(
            BronzeDate::parse("1970-01-01")
                .map(|d| d.epoch_millis())
                .ok(),
            Some(0)
        );
        for text in ["2025-11-20", "2024-02-29", "2000-03-01", "1999-12-31"] {
            let d = BronzeDate::parse(text).expect("date");
            assert_eq!(
                BronzeDate::from_epoch_micros(d.epoch_millis() * 1000),
                d,
                "{text}"
            );
            let before = BronzeDate::from_epoch_micros((d.epoch_millis() - 1) * 1000);
            assert!(
                before < d,
                "{text}: the millisecond before is the day before"
            );
        }
    }

    #[test]
    fn escapes_and_odd_characters_are_refused() {
        for bad in [
            "..", "../etc", "a/b", "a\\b", ".hidden", "", "x\ny", "a=b", "tab\t", "ünï",
        ] {
            assert!(validate_source(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["iot", "postgres.shop.orders", "x_api-v2"] {
            validate_source(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn dates_are_real_calendar_dates() {
        assert_eq!(
            BronzeDate::parse("2024-02-29").map(|d| d.to_string()).ok(),
            Some("2024-02-29".into())
        );
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-1-01",
            "2026-01-32",
            "../../x",
            "2026/01/01",
            "+026-01-01",
        ] {
            assert!(BronzeDate::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(
            BronzeDate::parse("2026-01-01").unwrap() < BronzeDate::parse("2026-01-02").unwrap()
        );
        assert_eq!(
            BronzeDate::from_epoch_micros(1_763_646_312_123_000).to_string(),
            "2025-11-20"
        );
    }
}
