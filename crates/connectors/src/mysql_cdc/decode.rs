//! Values → JSON, the same way from the binlog and from the snapshot (text protocol), so that an
//! `op=r` row and a later `op=c` of the same data are equal.
//!
//! Mapping (Debezium's defaults with `decimal.handling.mode=string`): integers as JSON numbers
//! (unsigned BIGINT up to 2^64-1 exactly), DECIMAL as its exact string, FLOAT / DOUBLE as
//! numbers, DATE as days since the epoch, DATETIME as epoch milliseconds (precision ≤ 3) or
//! microseconds (4–6), TIMESTAMP as an ISO-8601 UTC string, TIME as microseconds, YEAR as a
//! number, text / JSON / ENUM / SET as strings (SET labels joined by `,`; MySQL 8's binary
//! JSON printed as text by [`super::json_binary`]), binary as base64.
//! Zero dates (`0000-00-00`, month or day 0) become `null` — a policy: they are not instants.

use mysql_async::Value;
use mysql_async::binlog::value::BinlogValue;
use serde_json::Value as Json;

use super::schema::{Column, Kind};

/// Why a value could not be mapped.
pub type DecodeProblem = String;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The date of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = (if z >= 0 { z } else { z - 146096 }) / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn trimmed_fraction(us: u32) -> String {
    if us == 0 {
        String::new()
    } else {
        let s = format!(".{us:06}");
        s.trim_end_matches('0').to_string()
    }
}

fn iso_utc(secs: i64, us: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        trimmed_fraction(us)
    )
}

/// `(year, month, day, hour, minute, second, microsecond)`.
type Parts = (u16, u8, u8, u8, u8, u8, u32);

fn datetime_json(col: &Column, (y, mo, d, h, mi, s, us): Parts) -> Json {
    if mo == 0 || d == 0 {
        return Json::Null;
    }
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    match col.kind {
        Kind::Date => Json::from(days),
        Kind::Timestamp => {
            let secs = days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64;
            Json::from(iso_utc(secs, us))
        }
        _ => {
            let micros = (days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1_000_000
                + us as i64;
            if col.fsp <= 3 {
                Json::from(micros.div_euclid(1000))
            } else {
                Json::from(micros)
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses `6` digits of a fraction (`"12"` → 120000).
fn parse_fraction(f: &str) -> u32 {
    let mut digits: String = f.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    digits.parse().unwrap_or(0)
}

/// `YYYY-MM-DD[ HH:MM:SS[.f]]` → parts.
fn parse_datetime_text(s: &str) -> Option<Parts> {
    let (date, time) = s.split_once(' ').unwrap_or((s, "00:00:00"));
    let mut dp = date.split('-');
    let y = dp.next()?.parse().ok()?;
    let mo = dp.next()?.parse().ok()?;
    let d = dp.next()?.parse().ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut tp = hms.split(':');
    let h = tp.next()?.parse().ok()?;
    let mi = tp.next()?.parse().ok()?;
    let sec = tp.next()?.parse().ok()?;
    Some((y, mo, d, h, mi, sec, parse_fraction(frac)))
}

fn time_micros(neg: bool, days: u32, h: u8, m: u8, s: u8, us: u32) -> i64 {
    let v =
        ((days as i64 * 24 + h as i64) * 3600 + m as i64 * 60 + s as i64) * 1_000_000 + us as i64;
    if neg { -v } else { v }
}

/// A VECTOR's bytes (little-endian float32s) as a JSON array of numbers.
fn vector_json(bytes: &[u8]) -> Result<Json, DecodeProblem> {
    if !bytes.len().is_multiple_of(4) {
        return Err(format!(
            "a VECTOR of {} bytes is not whole float32 values",
            bytes.len()
        ));
    }
    Ok(Json::Array(
        bytes
            .chunks_exact(4)
            .map(|c| {
                let f = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                // Through the shortest decimal form, as FLOAT columns are.
                let v: f64 = format!("{f}").parse().unwrap_or(f64::from(f));
                serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
            })
            .collect(),
    ))
}

/// A snapshot (text protocol) value.
pub fn from_text(col: &Column, value: &Value) -> Result<Json, DecodeProblem> {
    let bytes = match value {
        Value::NULL => return Ok(Json::Null),
        Value::Bytes(b) => b,
        // The text protocol only sends bytes; anything else is a binary-protocol value.
        other => return from_value(col, other.clone()),
    };
    let s = || text(bytes);
    Ok(match col.kind {
        Kind::Int | Kind::Year => {
            let t = s();
            if let Ok(v) = t.parse::<i64>() {
                Json::from(v)
            } else if let Ok(v) = t.parse::<u64>() {
                Json::from(v)
            } else {
                return Err(format!("`{t}` is not an integer"));
            }
        }
        Kind::Float | Kind::Double => {
            let t = s();
            let v: f64 = t.parse().map_err(|_| format!("`{t}` is not a number"))?;
            serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
        }
        Kind::Date | Kind::DateTime | Kind::Timestamp => {
            let t = s();
            let parts =
                parse_datetime_text(&t).ok_or_else(|| format!("`{t}` is not a date/time"))?;
            datetime_json(col, parts)
        }
        Kind::Time => {
            let t = s();
            let (neg, body) = match t.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, t.as_str()),
            };
            let (hms, frac) = body.split_once('.').unwrap_or((body, ""));
            let p: Vec<i64> = hms.split(':').filter_map(|x| x.parse().ok()).collect();
            if p.len() != 3 {
                return Err(format!("`{t}` is not a TIME"));
            }
            let v = (p[0] * 3600 + p[1] * 60 + p[2]) * 1_000_000 + parse_fraction(frac) as i64;
            Json::from(if neg { -v } else { v })
        }
        Kind::Bytes => Json::from(crate::base64(bytes)),
        Kind::Vector => vector_json(bytes)?,
        Kind::Decimal | Kind::Enum | Kind::Set => Json::from(s()),
        // The snapshot's connection converts every string to utf8mb4: anything else is a
        // corrupt value, refused rather than replaced.
        Kind::Text => {
            Json::from(std::str::from_utf8(bytes).map_err(|e| {
                format!("column `{}`: the server sent invalid UTF-8: {e}", col.name)
            })?)
        }
    })
}

/// A binlog value.
pub fn from_binlog(col: &Column, value: BinlogValue<'_>) -> Result<Json, DecodeProblem> {
    match value {
        // String bytes in the binlog are in the column's own charset, not the connection's.
        BinlogValue::Value(Value::Bytes(b)) if col.kind == Kind::Text => {
            super::charset::decode(col.charset.as_deref(), &b)
                .map(Json::from)
                .map_err(|why| {
                    format!(
                        "column `{}` ({}): {why}",
                        col.name,
                        col.charset.as_deref().unwrap_or("no charset")
                    )
                })
        }
        BinlogValue::Value(v) => from_value(col, v),
        // MySQL's binary JSON: as the text MySQL prints, like MariaDB's JSON-as-text.
        BinlogValue::Jsonb(j) => super::json_binary::to_text(j).map(Json::from),
        BinlogValue::JsonDiff(_) => Err("a partial JSON update (MySQL \
             binlog_row_value_options=PARTIAL_JSON) holds only the changed paths, not the \
             document: set binlog_row_value_options='' on the server"
            .into()),
    }
}

fn int_width(data_type: &str) -> u32 {
    match data_type {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        _ => 64,
    }
}

/// A decoded binlog value (or a binary-protocol value).
pub fn from_value(col: &Column, value: Value) -> Result<Json, DecodeProblem> {
    Ok(match (col.kind, value) {
        (_, Value::NULL) => Json::Null,
        (Kind::Int | Kind::Year, Value::Int(v)) => {
            if col.unsigned && v < 0 {
                let w = int_width(&col.data_type);
                let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
                Json::from(v as u64 & mask)
            } else {
                Json::from(v)
            }
        }
        (Kind::Int | Kind::Year, Value::UInt(v)) => Json::from(v),
        (Kind::Year, Value::Bytes(b)) => {
            let t = text(&b);
            let y: i64 = t.parse().map_err(|_| format!("`{t}` is not a YEAR"))?;
            // The binlog stores YEAR as an offset from 1900; 0 is the zero year.
            Json::from(if y == 1900 { 0 } else { y })
        }
        (Kind::Float, Value::Float(f)) => {
            // Through the shortest decimal form, so FLOAT 1.1 stays 1.1 (as the snapshot reads it).
            let v: f64 = format!("{f}").parse().unwrap_or(f as f64);
            serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
        }
        (Kind::Float | Kind::Double, Value::Double(f)) => {
            serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
        }
        (Kind::Date | Kind::DateTime | Kind::Timestamp, Value::Date(y, mo, d, h, mi, s, us)) => {
            datetime_json(col, (y, mo, d, h, mi, s, us))
        }
        (Kind::Timestamp, Value::Bytes(b)) => {
            let t = text(&b);
            let (secs, frac) = t.split_once('.').unwrap_or((&t, ""));
            let secs: i64 = secs
                .parse()
                .map_err(|_| format!("`{t}` is not a TIMESTAMP"))?;
            if secs == 0 && frac.is_empty() {
                Json::Null
            } else {
                Json::from(iso_utc(secs, parse_fraction(frac)))
            }
        }
        (Kind::Timestamp, Value::Int(secs)) => {
            if secs == 0 {
                Json::Null
            } else {
                Json::from(iso_utc(secs, 0))
            }
        }
        (Kind::Time, Value::Time(neg, d, h, m, s, us)) => {
            Json::from(time_micros(neg, d, h, m, s, us))
        }
        (Kind::Enum, Value::Int(i)) => {
            if i <= 0 {
                Json::from("")
            } else {
                let label = col.labels.get(i as usize - 1).ok_or_else(|| {
                    format!(
                        "ENUM index {i} but the column has {} labels",
                        col.labels.len()
                    )
                })?;
                Json::from(label.clone())
            }
        }
        (Kind::Set, Value::Bytes(bits)) => {
            let mut parts = Vec::new();
            for (i, label) in col.labels.iter().enumerate() {
                if bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0) {
                    parts.push(label.as_str());
                }
            }
            Json::from(parts.join(","))
        }
        (Kind::Bytes, Value::Bytes(b)) => Json::from(crate::base64(&b)),
        (Kind::Vector, Value::Bytes(b)) => vector_json(&b)?,
        (Kind::Decimal | Kind::Text | Kind::Enum, Value::Bytes(b)) => Json::from(text(&b)),
        (kind, v) => return Err(format!("a {v:?} value does not fit a {kind:?} column")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql_cdc::schema::column_from_info;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        for z in [-800_000, -1, 0, 1, 11017, 20000, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(iso_utc(1763646912, 120000), "2025-11-20T13:55:12.12Z");
    }

    #[test]
    fn binlog_and_snapshot_agree() {
        let ts = column_from_info("t", "timestamp", "timestamp(3)", 3);
        assert_eq!(
            from_text(&ts, &Value::Bytes(b"2025-11-20 13:55:12.120".to_vec())).unwrap(),
            from_value(&ts, Value::Bytes(b"1763646912.120000".to_vec())).unwrap()
        );
        let dt = column_from_info("d", "datetime", "datetime", 0);
        assert_eq!(
            from_text(&dt, &Value::Bytes(b"2025-11-20 13:55:12".to_vec())).unwrap(),
            from_value(&dt, Value::Date(2025, 11, 20, 13, 55, 12, 0)).unwrap()
        );
        assert_eq!(
            from_value(&dt, Value::Date(0, 0, 0, 0, 0, 0, 0)).unwrap(),
            Json::Null
        );
        let u = column_from_info("u", "tinyint", "tinyint(3) unsigned", 0);
        assert_eq!(from_value(&u, Value::Int(-1)).unwrap(), Json::from(255));
        let s = column_from_info("s", "set", "set('a','b','c')", 0);
        assert_eq!(
            from_value(&s, Value::Bytes(vec![0b101])).unwrap(),
            Json::from("a,c")
        );
    }
}
