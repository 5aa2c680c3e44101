//! MySQL 8's binary JSON (row events of JSON columns) → the JSON text MySQL itself prints.
//!
//! Why it exists: MariaDB stores JSON as text, so its change events carry the document as a
//! string; MySQL writes JSON columns to the binlog in its binary format. To give both servers the
//! same output — a JSON string holding the document's text, equal to what a snapshot `SELECT`
//! returns — the binary value (parsed by mysql_common's `binlog::jsonb`) is printed the way
//! MySQL prints JSON: `{"k": v, …}` / `[a, b]` with `", "` and `": "` separators, object keys in
//! their stored order (MySQL sorts them by length, then bytes), strings with JSON escapes,
//! DECIMAL as a bare number, DATE / TIME / DATETIME as quoted strings with microseconds, other
//! opaque values as `"base64:type<N>:<data>"`, and an integral double with a trailing `.0`.
//!
//! Invariant: the result parses as JSON and holds the same values as the document (tested with
//! documents built byte by byte per the format). Not guaranteed: the *notation* of very large or
//! very small doubles (MySQL's `my_gcvt` vs. the shortest round-trip form used here).
//!
//! How it fails: malformed binary JSON (bad offsets, invalid UTF-8) → a [`DecodeProblem`] that
//! the caller turns into `MysqlDecode` naming table, column and position. Partial JSON updates
//! (`binlog_row_value_options=PARTIAL_JSON`) carry only changed paths, not a document; they are
//! refused at start by the settings check and, should one arrive anyway, by [`super::decode`].

use std::fmt::Write;

use mysql_async::binlog::jsonb::{JsonDom, JsonNumber, JsonScalar, Value};

use super::decode::DecodeProblem;

/// MySQL's own bound on JSON nesting.
pub const MAX_DEPTH: usize = 100;
/// The longest text a document may print as. Binary JSON addresses values by offsets, and
/// nothing stops two elements from pointing at the same sub-document: a few KB of shared
/// offsets printed naively would expand exponentially (a defensive bound: no such input has
/// been seen). MySQL documents are bounded by `max_allowed_packet` (1 GiB at most), and text
/// is larger than the binary form only by punctuation.
pub const MAX_TEXT_BYTES: usize = 256 << 20;

/// The JSON text of a binary JSON value.
pub fn to_text(value: Value<'_>) -> Result<String, DecodeProblem> {
    let mut out = String::new();
    write_value(value, &mut out, 0)?;
    Ok(out)
}

fn check_bounds(out: &str, depth: usize) -> Result<(), DecodeProblem> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "malformed MySQL binary JSON: nested deeper than {MAX_DEPTH} levels"
        ));
    }
    if out.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "malformed MySQL binary JSON: it prints as more than {MAX_TEXT_BYTES} bytes \
             (elements sharing offsets)"
        ));
    }
    Ok(())
}

fn bad(e: impl std::fmt::Display) -> DecodeProblem {
    format!("malformed MySQL binary JSON: {e}")
}

fn write_value(value: Value<'_>, out: &mut String, depth: usize) -> Result<(), DecodeProblem> {
    check_bounds(out, depth)?;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Value::I16(x) => push_display(out, x),
        Value::U16(x) => push_display(out, x),
        Value::I32(x) => push_display(out, x),
        Value::U32(x) => push_display(out, x),
        Value::I64(x) => push_display(out, x),
        Value::U64(x) => push_display(out, x),
        Value::F64(x) => out.push_str(&double_text(x)),
        Value::String(s) => {
            let text = std::str::from_utf8(s.str_raw()).map_err(bad)?;
            push_string(out, text);
        }
        Value::SmallArray(a) => write_array(a.iter(), out, depth + 1)?,
        Value::LargeArray(a) => write_array(a.iter(), out, depth + 1)?,
        Value::SmallObject(o) => write_object(o.iter(), out, depth + 1)?,
        Value::LargeObject(o) => write_object(o.iter(), out, depth + 1)?,
        // mysql_common's parse of an opaque date / time / decimal overflows (a panic with
        // overflow checks) on some bytes: found by the `mysql_json_binary` fuzz target.
        opaque @ Value::Opaque(_) => {
            match crate::no_panic::no_panic("a binary JSON opaque value", || opaque.parse())?
                .map_err(bad)?
            {
                JsonDom::Scalar(JsonScalar::Number(JsonNumber::Decimal(d))) => push_display(out, d),
                other => out.push_str(&serde_json::Value::from(other).to_string()),
            }
        }
    }
    Ok(())
}

fn write_array<'a>(
    items: impl Iterator<Item = std::io::Result<Value<'a>>>,
    out: &mut String,
    depth: usize,
) -> Result<(), DecodeProblem> {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_value(item.map_err(bad)?, out, depth)?;
    }
    out.push(']');
    Ok(())
}

fn write_object<'a>(
    entries: impl Iterator<
        Item = std::io::Result<(mysql_async::binlog::jsonb::ObjectKey<'a>, Value<'a>)>,
    >,
    out: &mut String,
    depth: usize,
) -> Result<(), DecodeProblem> {
    out.push('{');
    for (i, entry) in entries.enumerate() {
        let (key, value) = entry.map_err(bad)?;
        if i > 0 {
            out.push_str(", ");
        }
        let key = std::str::from_utf8(key.value_raw()).map_err(bad)?;
        push_string(out, key);
        out.push_str(": ");
        write_value(value, out, depth)?;
    }
    out.push('}');
    Ok(())
}

fn push_display(out: &mut String, x: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{x}");
}

fn push_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::Value::from(s).to_string());
}

/// A double as MySQL prints it in JSON: shortest round-trip digits, exponent form for very
/// large or small magnitudes, `.0` after an integral value (so it does not read as an integer).
pub fn double_text(x: f64) -> String {
    if !x.is_finite() {
        // MySQL cannot store NaN or infinities in JSON; never expected.
        return "null".into();
    }
    let a = x.abs();
    let text = if a != 0.0 && !(1e-4..1e15).contains(&a) {
        format!("{x:e}")
    } else {
        format!("{x}")
    };
    if text.contains(['.', 'e']) {
        text
    } else {
        text + ".0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::binlog::BinlogVersion;
    use mysql_async::binlog::events::{Event, EventData, FormatDescriptionEvent, TableMapEvent};
    use mysql_async::binlog::value::BinlogValue;

    #[test]
    fn fuzz_finding_an_opaque_date_that_overflows_the_parser_is_an_error() {
        // Found by the `mysql_json_binary` fuzz target: an opaque DATETIME whose packed value
        // makes mysql_common's unpacking overflow (a panic with overflow checks on).
        let bytes = [
            0x0f, 0x0a, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xcd, 0xcd, 0xcd, 0x09,
        ];
        let value: Value<'_> = mysql_common::io::ParseBuf(&bytes)
            .parse(())
            .expect("parses as an opaque value");
        let _ = to_text(value); // an error or a text, never a panic
    }

    /// A binlog event: 19-byte v4 header, then `data` (no checksum).
    fn event(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&0u32.to_le_bytes()); // timestamp
        e.push(kind);
        e.extend_from_slice(&1u32.to_le_bytes()); // server id
        e.extend_from_slice(&(19 + data.len() as u32).to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes()); // log pos
        e.extend_from_slice(&0u16.to_le_bytes()); // flags
        e.extend_from_slice(data);
        e
    }

    /// The binary JSON `doc` as MySQL would write it in a WRITE_ROWS event of a one-column
    /// table `d.t (j JSON)`, decoded by mysql_common and printed.
    fn through_a_rows_event(doc: &[u8]) -> String {
        decoded(doc).unwrap()
    }

    fn decoded(doc: &[u8]) -> Result<String, DecodeProblem> {
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let mut tm = vec![1, 0, 0, 0, 0, 0, 0, 0]; // table id (6), flags (2)
        tm.extend_from_slice(&[1, b'd', 0, 1, b't', 0]); // db, table
        tm.extend_from_slice(&[1, 245, 1, 4, 1]); // 1 column JSON, meta [4], nullable
        let tm = Event::read(&fde, &event(19, &tm)[..]).unwrap();
        let tme: TableMapEvent<'_> = tm.read_event().unwrap();
        let mut rows = vec![1, 0, 0, 0, 0, 0, 0, 0, 1, 0b1, 0b0]; // id, flags, 1 col, present, nulls
        rows.extend_from_slice(&(doc.len() as u32).to_le_bytes());
        rows.extend_from_slice(doc);
        let ev = Event::read(&fde, &event(23, &rows)[..]).unwrap();
        let Ok(Some(EventData::RowsEvent(re))) = ev.read_data() else {
            panic!("not a rows event")
        };
        let (_, after) = re.rows(&tme).next().unwrap().map_err(bad)?;
        match after.unwrap().take(0).unwrap() {
            BinlogValue::Jsonb(v) => to_text(v),
            other => panic!("not binary JSON: {other:?}"),
        }
    }

    /// `{"a": [1, "x", true, null], "d": 2.5, "i": 7, "s": "hi"}` in MySQL's binary format
    /// (small object: count, size, key entries, value entries, keys, values; offsets from the
    /// start of the object after its type byte; int16 and literals inlined).
    fn sample() -> Vec<u8> {
        let mut arr = vec![4, 0, 18, 0]; // 4 elements, 18 bytes
        arr.extend_from_slice(&[0x05, 1, 0]); // int16 1, inlined
        arr.extend_from_slice(&[0x0c, 16, 0]); // string at 16
        arr.extend_from_slice(&[0x04, 1, 0]); // literal true
        arr.extend_from_slice(&[0x04, 0, 0]); // literal null
        arr.extend_from_slice(&[1, b'x']);
        assert_eq!(arr.len(), 18);
        let mut obj = vec![4, 0, 65, 0]; // 4 members, 65 bytes
        for k in 0..4u16 {
            obj.extend_from_slice(&(32 + k).to_le_bytes()); // key offset
            obj.extend_from_slice(&1u16.to_le_bytes()); // key length
        }
        obj.extend_from_slice(&[0x02, 36, 0]); // "a": small array at 36
        obj.extend_from_slice(&[0x0b, 54, 0]); // "d": double at 54
        obj.extend_from_slice(&[0x05, 7, 0]); // "i": int16 7, inlined
        obj.extend_from_slice(&[0x0c, 62, 0]); // "s": string at 62
        obj.extend_from_slice(b"adis");
        obj.extend_from_slice(&arr);
        obj.extend_from_slice(&2.5f64.to_le_bytes());
        obj.extend_from_slice(&[2, b'h', b'i']);
        assert_eq!(obj.len(), 65);
        let mut doc = vec![0x00]; // small object
        doc.extend_from_slice(&obj);
        doc
    }

    #[test]
    fn binary_json_prints_as_mysql_text() {
        let text = through_a_rows_event(&sample());
        assert_eq!(
            text,
            r#"{"a": [1, "x", true, null], "d": 2.5, "i": 7, "s": "hi"}"#
        );
        // The same document MariaDB would give as text, once parsed.
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"a": [1, "x", true, null], "d": 2.5, "i": 7, "s": "hi"})
        );
    }

    #[test]
    fn scalars_and_escapes() {
        // A top-level string with a quote and a newline; a negative int64; a double.
        let mut s = vec![0x0c, 4];
        s.extend_from_slice(b"a\"\nb");
        assert_eq!(through_a_rows_event(&s), r#""a\"\nb""#);
        let mut i = vec![0x09];
        i.extend_from_slice(&(-5_000_000_000i64).to_le_bytes());
        assert_eq!(through_a_rows_event(&i), "-5000000000");
        let mut d = vec![0x0b];
        d.extend_from_slice(&3.0f64.to_le_bytes());
        assert_eq!(through_a_rows_event(&d), "3.0");
        assert_eq!(through_a_rows_event(&[0x04, 0x02]), "false");
        // An empty value is JSON null (as MySQL reads it).
        assert_eq!(through_a_rows_event(&[]), "null");
    }

    #[test]
    fn malformed_documents_are_problems_not_panics() {
        let mut doc = sample();
        doc[5] = 200; // the first key's offset points past the end
        let problem = decoded(&doc).unwrap_err();
        assert!(problem.contains("malformed MySQL binary JSON"), "{problem}");
        let mut doc = sample();
        let last = doc.len() - 1;
        doc[last] = 0xff; // invalid UTF-8 in "hi"
        assert!(decoded(&doc).is_err());
    }

    #[test]
    fn doubles() {
        assert_eq!(double_text(2.5), "2.5");
        assert_eq!(double_text(-1.0), "-1.0");
        assert_eq!(double_text(0.0), "0.0");
        assert_eq!(double_text(1e20), "1e20");
        assert_eq!(double_text(1.5e-7), "1.5e-7");
    }
}
