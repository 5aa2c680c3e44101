//! The small type language of pipeline specs: `string`, `int64`, `float64 not null`,
//! `timestamp`, `timestamp(ms)`, `decimal(12,2)`, `list<string>`, `struct<lat double, lon double>`.
//!
//! Why our own: specs are written by hand, so types must read like SQL / Spark DDL, and a typo
//! must come back as a clear message naming the type text. `timestamp` means microseconds in
//! UTC, the precision Iceberg and Parquet readers expect.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use indexmap::IndexMap;

/// A parsed column type: Arrow type plus nullability.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    /// The Arrow data type.
    pub data_type: DataType,
    /// False when the text ended in `not null`.
    pub nullable: bool,
}

/// Parses a column type such as `float64 not null`.
pub fn parse_column_type(text: &str) -> Result<ColumnType, String> {
    let mut p = TypeParser {
        s: text.as_bytes(),
        pos: 0,
        text,
    };
    let data_type = p.data_type()?;
    let nullable = !p.eat_keywords(&["not", "null"]);
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(p.err("unexpected text after the type"));
    }
    Ok(ColumnType {
        data_type,
        nullable,
    })
}

/// Builds an Arrow schema from an ordered `name: type` map; errors name the column.
pub fn schema_from_map(columns: &IndexMap<String, String>) -> Result<Schema, (String, String)> {
    let mut fields = Vec::with_capacity(columns.len());
    for (name, text) in columns {
        let t = parse_column_type(text).map_err(|e| (name.clone(), e))?;
        fields.push(Field::new(name, t.data_type, t.nullable));
    }
    Ok(Schema::new(fields))
}

/// Renders a type back in the spec language (used in messages and `strata plan`).
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Date32 => "date".into(),
        DataType::Binary | DataType::LargeBinary => "binary".into(),
        DataType::Timestamp(unit, tz) => {
            let u = match unit {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            match tz {
                Some(_) => format!("timestamp({u})"),
                None => format!("timestamp_ntz({u})"),
            }
        }
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::List(f) | DataType::LargeList(f) => format!("list<{}>", type_name(f.data_type())),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{} {}", f.name(), type_name(f.data_type())))
                .collect();
            format!("struct<{}>", inner.join(", "))
        }
        other => format!("{other}"),
    }
}

struct TypeParser<'a> {
    s: &'a [u8],
    pos: usize,
    text: &'a str,
}

impl TypeParser<'_> {
    fn err(&self, msg: &str) -> String {
        format!("{msg} at position {} of type `{}`", self.pos, self.text)
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_')
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| String::from_utf8_lossy(&self.s[start..self.pos]).to_lowercase())
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.pos < self.s.len() && self.s[self.pos] == c {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(&format!("expected `{}`", c as char)))
        }
    }

    /// Consumes the keyword sequence if all of it is there; otherwise consumes nothing.
    fn eat_keywords(&mut self, words: &[&str]) -> bool {
        let save = self.pos;
        for w in words {
            if self.ident().as_deref() != Some(*w) {
                self.pos = save;
                return false;
            }
        }
        true
    }

    fn number(&mut self) -> Result<u32, String> {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| self.err("expected a number"))
    }

    fn time_unit(&mut self) -> Result<TimeUnit, String> {
        if !self.eat(b'(') {
            return Ok(TimeUnit::Microsecond);
        }
        let unit = match self.ident().as_deref() {
            Some("s") => TimeUnit::Second,
            Some("ms") => TimeUnit::Millisecond,
            Some("us") => TimeUnit::Microsecond,
            Some("ns") => TimeUnit::Nanosecond,
            _ => return Err(self.err("expected a time unit: s, ms, us or ns")),
        };
        self.expect(b')')?;
        Ok(unit)
    }

    fn data_type(&mut self) -> Result<DataType, String> {
        let name = self
            .ident()
            .ok_or_else(|| self.err("expected a type name"))?;
        Ok(match name.as_str() {
            "string" | "utf8" | "text" | "varchar" => DataType::Utf8,
            "bool" | "boolean" => DataType::Boolean,
            "int8" | "tinyint" => DataType::Int8,
            "int16" | "smallint" => DataType::Int16,
            "int32" | "int" | "integer" => DataType::Int32,
            "int64" | "bigint" | "long" => DataType::Int64,
            "uint8" => DataType::UInt8,
            "uint16" => DataType::UInt16,
            "uint32" => DataType::UInt32,
            "uint64" => DataType::UInt64,
            "float32" | "float" | "real" => DataType::Float32,
            "float64" | "double" => DataType::Float64,
            "date" => DataType::Date32,
            "binary" | "bytes" => DataType::Binary,
            "timestamp" | "timestamptz" => {
                DataType::Timestamp(self.time_unit()?, Some(Arc::from("UTC")))
            }
            "timestamp_ntz" => DataType::Timestamp(self.time_unit()?, None),
            "decimal" | "numeric" => {
                self.expect(b'(')?;
                let p = self.number()?;
                self.expect(b',')?;
                let s = self.number()?;
                self.expect(b')')?;
                if p == 0 || p > 38 || s > p {
                    return Err(
                        self.err("decimal needs 1 <= precision <= 38 and scale <= precision")
                    );
                }
                DataType::Decimal128(p as u8, s as i8)
            }
            "list" | "array" => {
                self.expect(b'<')?;
                let inner = self.data_type()?;
                self.expect(b'>')?;
                DataType::List(Arc::new(Field::new("item", inner, true)))
            }
            "struct" => {
                self.expect(b'<')?;
                let mut fields = Vec::new();
                loop {
                    let fname = self
                        .ident()
                        .ok_or_else(|| self.err("expected a field name"))?;
                    self.eat(b':');
                    let ft = self.data_type()?;
                    if self.eat_keywords(&["not", "null"]) {
                        return Err(self.err("`not null` is only supported on top-level columns"));
                    }
                    fields.push(Field::new(fname, ft, true));
                    if self.eat(b'>') {
                        break;
                    }
                    self.expect(b',')?;
                }
                DataType::Struct(Fields::from(fields))
            }
            other => {
                return Err(format!(
                    "unknown type `{other}` in `{}` (known: string, bool, int8..int64, uint8..uint64, float32, float64, date, timestamp[(unit)], timestamp_ntz, decimal(p,s), binary, list<T>, struct<name T, ...>)",
                    self.text
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scalars_and_nullability() {
        let t = parse_column_type("float64 not null").unwrap();
        assert_eq!(t.data_type, DataType::Float64);
        assert!(!t.nullable);
        assert!(parse_column_type("STRING").unwrap().nullable);
        assert_eq!(
            parse_column_type("timestamp(ms)").unwrap().data_type,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(
            parse_column_type("decimal(12, 2)").unwrap().data_type,
            DataType::Decimal128(12, 2)
        );
    }

    #[test]
    fn parses_nested_types() {
        let t = parse_column_type("struct<lat double, lon: double, site string>").unwrap();
        let DataType::Struct(fields) = &t.data_type else {
            panic!("not a struct")
        };
        assert_eq!(fields.len(), 3);
        assert!(parse_column_type("struct<a int64 not null>").is_err());
        let l = parse_column_type("list<struct<a int64>>").unwrap();
        assert_eq!(type_name(&l.data_type), "list<struct<a int64>>");
    }

    #[test]
    fn bad_types_are_named() {
        let e = parse_column_type("flaot").unwrap_err();
        assert!(e.contains("unknown type `flaot`"), "{e}");
        assert!(parse_column_type("decimal(3,5)").is_err());
        assert!(parse_column_type("list<string").is_err());
        assert!(parse_column_type("int64 extra").is_err());
    }
}
