//! Table schemas: the logical type of each column, read from `information_schema`.
//!
//! The binlog's TABLE_MAP event says how each value is encoded (physical type, metadata) and —
//! with `binlog_row_metadata=FULL` — the column names, signedness and ENUM / SET labels *as
//! they were when the row was written*. What it cannot say (DECIMAL vs text is clear, but
//! BLOB vs TEXT, DATETIME precision) comes from `information_schema`, matched by column name.
//! `information_schema` is the *current* schema: a column renamed or retyped after an event
//! was written is interpreted with today's type (see `docs/sources.md`).

use std::collections::HashMap;

use mysql_async::prelude::Queryable;

use super::checks::query_error;
use crate::error::{ConnectorError, Result};

/// The logical type family of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TINYINT … BIGINT.
    Int,
    /// DECIMAL / NUMERIC: exact, as a string.
    Decimal,
    /// FLOAT.
    Float,
    /// DOUBLE.
    Double,
    /// DATE: days since the epoch.
    Date,
    /// DATETIME: epoch milliseconds (precision ≤ 3) or microseconds.
    DateTime,
    /// TIMESTAMP: ISO-8601 in UTC.
    Timestamp,
    /// TIME: microseconds.
    Time,
    /// YEAR.
    Year,
    /// CHAR, VARCHAR, TEXT, JSON: UTF-8 string.
    Text,
    /// ENUM label.
    Enum,
    /// SET labels joined by `,`.
    Set,
    /// BINARY, VARBINARY, BLOB, BIT, geometry: base64.
    Bytes,
    /// VECTOR (MySQL 9): an array of float32 (Debezium's `FloatVector`).
    Vector,
}

/// One column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Logical type.
    pub kind: Kind,
    /// `information_schema.COLUMNS.DATA_TYPE`.
    pub data_type: String,
    /// UNSIGNED integer.
    pub unsigned: bool,
    /// Fractional seconds digits (DATETIME / TIMESTAMP / TIME).
    pub fsp: u32,
    /// ENUM or SET labels.
    pub labels: Vec<String>,
    /// `information_schema.COLUMNS.CHARACTER_SET_NAME` of a string column: how its binlog bytes
    /// are decoded ([`super::charset`]).
    pub charset: Option<String>,
}

/// One table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// Database.
    pub db: String,
    /// Table.
    pub table: String,
    /// Columns in ordinal order.
    pub columns: Vec<Column>,
    /// Primary-key column names, in key order (empty: no primary key).
    pub primary_key: Vec<String>,
}

impl TableSchema {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Maps `DATA_TYPE` (and `COLUMN_TYPE`) to a [`Column`].
pub fn column_from_info(name: &str, data_type: &str, column_type: &str, fsp: u32) -> Column {
    let dt = data_type.to_ascii_lowercase();
    let kind = match dt.as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => Kind::Int,
        "decimal" | "numeric" => Kind::Decimal,
        "float" => Kind::Float,
        "double" | "real" => Kind::Double,
        "date" => Kind::Date,
        "datetime" => Kind::DateTime,
        "timestamp" => Kind::Timestamp,
        "time" => Kind::Time,
        "year" => Kind::Year,
        "enum" => Kind::Enum,
        "set" => Kind::Set,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit"
        | "geometry" | "point" | "linestring" | "polygon" => Kind::Bytes,
        "vector" => Kind::Vector,
        _ => Kind::Text,
    };
    let labels = if matches!(kind, Kind::Enum | Kind::Set) {
        parse_labels(column_type)
    } else {
        Vec::new()
    };
    Column {
        name: name.to_string(),
        kind,
        data_type: dt,
        unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
        fsp,
        labels,
        charset: None,
    }
}

/// `enum('a','b''c')` → `["a", "b'c"]`.
pub fn parse_labels(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let body = &column_type[start + 1..];
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    label.push('\'');
                } else {
                    break;
                }
            } else if c == '\\' {
                if let Some(n) = chars.next() {
                    label.push(n);
                }
            } else {
                label.push(c);
            }
        }
        out.push(label);
    }
    out
}

/// One `information_schema.COLUMNS` row: name, data type, column type, datetime precision,
/// column key, character set.
type InfoRow = (String, String, String, Option<u64>, String, Option<String>);

/// Reads the current schema of `db.table`.
pub async fn load_table(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
) -> Result<TableSchema> {
    let rows: Vec<InfoRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, DATETIME_PRECISION, COLUMN_KEY, \
             CHARACTER_SET_NAME \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .map_err(|e| query_error(&format!("reading the schema of {db}.{table}"), e))?;
    if rows.is_empty() {
        return Err(ConnectorError::MysqlTableNotFound {
            table: format!("{db}.{table}"),
            hint: "check the `tables` list (names are case-sensitive on Linux) and that the \
                   CDC user has SELECT on it"
                .into(),
        });
    }
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .map_err(|e| query_error(&format!("reading the primary key of {db}.{table}"), e))?;
    let columns = rows
        .iter()
        .map(|(name, dt, ct, fsp, _, charset)| Column {
            charset: charset.clone(),
            ..column_from_info(name, dt, ct, fsp.unwrap_or(0) as u32)
        })
        .collect();
    Ok(TableSchema {
        db: db.to_string(),
        table: table.to_string(),
        columns,
        primary_key: pk,
    })
}

/// Schemas of the captured tables, keyed by `(db, table)`.
pub type Schemas = HashMap<(String, String), TableSchema>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_kinds() {
        assert_eq!(
            parse_labels("enum('a','b''c','d,e')"),
            vec!["a", "b'c", "d,e"]
        );
        let c = column_from_info("n", "int", "int(10) unsigned", 0);
        assert!(c.unsigned && c.kind == Kind::Int);
        assert_eq!(
            column_from_info("j", "longtext", "longtext", 0).kind,
            Kind::Text
        );
        assert_eq!(column_from_info("b", "blob", "blob", 0).kind, Kind::Bytes);
    }
}
