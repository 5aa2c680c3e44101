//! From PostgreSQL's catalog to an Arrow schema: which column is read how.
//!
//! Types are looked up in `pg_attribute` / `pg_type` (domains resolved to their base type), never
//! guessed from data, so every chunk and every run of a table has the same schema. Only built-in
//! types of `pg_catalog` are decoded from their binary form; anything else is selected with a
//! `::text` cast and arrives as `Utf8` — nothing is refused for its type.
//!
//! | PostgreSQL | Arrow |
//! |---|---|
//! | `bool` | `Boolean` |
//! | `int2` / `int4` / `int8` | `Int16` / `Int32` / `Int64` |
//! | `float4` / `float8` | `Float32` / `Float64` |
//! | `numeric(p,s)`, p ≤ 38, 0 ≤ s ≤ p | `Decimal128(p, s)` |
//! | `numeric` (no typmod) | `Decimal128(38, 10)` or `Utf8` (policy [`UnconstrainedNumeric`]) |
//! | `numeric(p,s)` with p > 38, s < 0 or s > p | `Utf8` (`::text`) |
//! | `text`, `varchar`, `bpchar`, `name`, `json` | `Utf8` |
//! | `jsonb` | `Utf8` (the JSON text) |
//! | `uuid` | `Utf8`, canonical lower-case form |
//! | `bytea` | `Binary` |
//! | `date` | `Date32` |
//! | `time` | `Time64(µs)` |
//! | `timestamp` | `Timestamp(µs, None)` |
//! | `timestamptz` | `Timestamp(µs, "UTC")` |
//! | one-dimensional array of any type above | `List<item>` (lower bound dropped) |
//! | anything else (enums, intervals, ranges, geometry, `money`, …) | `Utf8` (`::text`) |

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};

use super::config::UnconstrainedNumeric;

/// How one value is decoded from its binary COPY form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgKind {
    /// `bool`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `float4`.
    Float4,
    /// `float8`.
    Float8,
    /// `numeric` into `Decimal128(precision, scale)`.
    Numeric {
        /// Arrow precision.
        precision: u8,
        /// Arrow scale.
        scale: i8,
    },
    /// Text in the client encoding (UTF-8): text, varchar, bpchar, name, json, and `::text` casts.
    Text,
    /// `jsonb`: a version byte (1), then the JSON text.
    Jsonb,
    /// `uuid`: 16 bytes.
    Uuid,
    /// `bytea`.
    Bytea,
    /// `date`: days since 2000-01-01.
    Date,
    /// `time`: microseconds since midnight.
    Time,
    /// `timestamp`: microseconds since 2000-01-01, no time zone.
    Timestamp,
    /// `timestamptz`: microseconds since 2000-01-01 UTC.
    Timestamptz,
    /// A one-dimensional array of the inner kind.
    Array(Box<PgKind>),
}

impl PgKind {
    /// The Arrow type this kind decodes into.
    pub fn data_type(&self) -> DataType {
        match self {
            PgKind::Bool => DataType::Boolean,
            PgKind::Int2 => DataType::Int16,
            PgKind::Int4 => DataType::Int32,
            PgKind::Int8 => DataType::Int64,
            PgKind::Float4 => DataType::Float32,
            PgKind::Float8 => DataType::Float64,
            PgKind::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            PgKind::Text | PgKind::Jsonb | PgKind::Uuid => DataType::Utf8,
            PgKind::Bytea => DataType::Binary,
            PgKind::Date => DataType::Date32,
            PgKind::Time => DataType::Time64(TimeUnit::Microsecond),
            PgKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgKind::Timestamptz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
            }
            PgKind::Array(inner) => DataType::List(item_field(inner)),
        }
    }
}

/// The item field of a list column.
pub fn item_field(inner: &PgKind) -> FieldRef {
    Arc::new(Field::new("item", inner.data_type(), true))
}

/// A column as read: name, how it is selected and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgColumn {
    /// Column name.
    pub name: String,
    /// The declared type, as `format_type` prints it (`numeric(12,2)`, `text[]`).
    pub declared: String,
    /// Decoding.
    pub kind: PgKind,
    /// True when the column is selected as `::text` (the kind is then [`PgKind::Text`]).
    pub as_text: bool,
    /// False for `NOT NULL` columns of a table.
    pub nullable: bool,
}

impl PgColumn {
    /// The select-list expression.
    pub fn select_expr(&self) -> String {
        let q = quote_ident(&self.name);
        if self.as_text {
            format!("{q}::text")
        } else {
            q
        }
    }

    /// The Arrow field.
    pub fn field(&self) -> Field {
        Field::new(&self.name, self.kind.data_type(), self.nullable)
    }
}

/// The Arrow schema of `columns`.
pub fn schema_of(columns: &[PgColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns.iter().map(PgColumn::field).collect::<Vec<_>>(),
    ))
}

/// One row of the catalog query (see [`CATALOG_QUERY`]).
#[derive(Debug, Clone)]
pub struct CatalogRow {
    /// Column name.
    pub name: String,
    /// `NOT NULL`.
    pub not_null: bool,
    /// Type modifier (of the domain when the column's type is a domain).
    pub typmod: i32,
    /// Base type name.
    pub type_name: String,
    /// True when the base type lives in `pg_catalog`.
    pub builtin: bool,
    /// Element type name for arrays.
    pub elem_name: Option<String>,
    /// True when the element type lives in `pg_catalog`.
    pub elem_builtin: bool,
    /// `format_type(atttypid, atttypmod)`.
    pub declared: String,
}

/// Columns of relation `$1` (an oid), in table order, domains resolved to their base type.
pub const CATALOG_QUERY: &str = "\
SELECT a.attname::text,
       a.attnotnull,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       b.typname::text,
       bn.nspname = 'pg_catalog',
       e.typname::text,
       COALESCE(en.nspname = 'pg_catalog', false),
       format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
JOIN pg_namespace bn ON bn.oid = b.typnamespace
LEFT JOIN pg_type e ON e.oid = b.typelem AND b.typcategory = 'A'
LEFT JOIN pg_namespace en ON en.oid = e.typnamespace
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

/// The decoding of a scalar built-in type, `None` when it must be read as text.
fn scalar_kind(type_name: &str, typmod: i32, numeric: UnconstrainedNumeric) -> Option<PgKind> {
    Some(match type_name {
        "bool" => PgKind::Bool,
        "int2" => PgKind::Int2,
        "int4" => PgKind::Int4,
        "int8" => PgKind::Int8,
        "float4" => PgKind::Float4,
        "float8" => PgKind::Float8,
        "numeric" => numeric_kind(typmod, numeric)?,
        "text" | "varchar" | "bpchar" | "name" | "json" => PgKind::Text,
        "jsonb" => PgKind::Jsonb,
        "uuid" => PgKind::Uuid,
        "bytea" => PgKind::Bytea,
        "date" => PgKind::Date,
        "time" => PgKind::Time,
        "timestamp" => PgKind::Timestamp,
        "timestamptz" => PgKind::Timestamptz,
        _ => return None,
    })
}

/// `numeric(p,s)` from its typmod (`((p << 16) | s) + 4`, s an 11-bit signed value since
/// PostgreSQL 15), `None` when Decimal128 cannot hold it.
pub fn numeric_kind(typmod: i32, policy: UnconstrainedNumeric) -> Option<PgKind> {
    if typmod < 4 {
        return match policy {
            UnconstrainedNumeric::Decimal => Some(PgKind::Numeric {
                precision: 38,
                scale: 10,
            }),
            UnconstrainedNumeric::Text => None,
        };
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    if !(1..=38).contains(&precision) || scale < 0 || scale > precision {
        return None;
    }
    Some(PgKind::Numeric {
        precision: precision as u8,
        scale: scale as i8,
    })
}

/// Decides how a catalog column is read.
pub fn column_from_catalog(
    row: &CatalogRow,
    force_text: bool,
    numeric: UnconstrainedNumeric,
) -> PgColumn {
    let kind = if force_text || !row.builtin {
        None
    } else if let Some(elem) = &row.elem_name {
        if row.elem_builtin {
            scalar_kind(elem, row.typmod, numeric).map(|k| PgKind::Array(Box::new(k)))
        } else {
            None
        }
    } else {
        scalar_kind(&row.type_name, row.typmod, numeric)
    };
    let (kind, as_text) = match kind {
        Some(k) => (k, false),
        None => (PgKind::Text, true),
    };
    PgColumn {
        name: row.name.clone(),
        declared: row.declared.clone(),
        kind,
        as_text,
        nullable: !row.not_null,
    }
}

/// `"name"` with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal of `text`.
///
/// Safe whatever the server's `standard_conforming_strings`: with it off, a backslash in a
/// plain `'…'` literal is an escape (`\'` would end the string early, and a watermark is a
/// value read from the source's own rows). A text with a backslash is therefore written as an
/// escape string `E'…'` with every backslash doubled, which both settings read the same way.
/// (The literal goes into a `COPY (SELECT …) TO STDOUT`, which takes no bind parameters.)
pub fn quote_literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(type_name: &str, typmod: i32, elem: Option<&str>) -> CatalogRow {
        CatalogRow {
            name: "c".into(),
            not_null: false,
            typmod,
            type_name: type_name.into(),
            builtin: true,
            elem_name: elem.map(str::to_string),
            elem_builtin: true,
            declared: type_name.into(),
        }
    }

    #[test]
    fn numeric_typmods() {
        // numeric(12,2): (12 << 16 | 2) + 4
        let k = numeric_kind((12 << 16 | 2) + 4, UnconstrainedNumeric::Decimal);
        assert_eq!(
            k,
            Some(PgKind::Numeric {
                precision: 12,
                scale: 2
            })
        );
        assert_eq!(
            numeric_kind(-1, UnconstrainedNumeric::Decimal),
            Some(PgKind::Numeric {
                precision: 38,
                scale: 10
            })
        );
        assert_eq!(numeric_kind(-1, UnconstrainedNumeric::Text), None);
        assert_eq!(
            numeric_kind((50 << 16) + 4, UnconstrainedNumeric::Decimal),
            None
        );
        // numeric(5,-2) in PostgreSQL 15: scale stored as 11-bit two's complement.
        assert_eq!(
            numeric_kind(((5 << 16) | (2048 - 2)) + 4, UnconstrainedNumeric::Decimal),
            None
        );
    }

    #[test]
    fn arrays_and_fallbacks() {
        let c = column_from_catalog(&row("_int4", -1, Some("int4")), false, Default::default());
        assert_eq!(c.kind, PgKind::Array(Box::new(PgKind::Int4)));
        assert!(!c.as_text);
        let c = column_from_catalog(&row("interval", -1, None), false, Default::default());
        assert!(c.as_text);
        assert_eq!(c.select_expr(), "\"c\"::text");
        let c = column_from_catalog(
            &row("_interval", -1, Some("interval")),
            false,
            Default::default(),
        );
        assert!(c.as_text);
        let c = column_from_catalog(&row("int8", -1, None), true, Default::default());
        assert!(c.as_text, "text_columns forces the cast");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("o'clock"), "'o''clock'");
    }
}
