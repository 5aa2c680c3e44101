//! A table's columns read from its TABLE_MAP event alone, when the server wrote full row
//! metadata (`binlog_row_metadata=FULL`, MySQL 8.0.1+ / MariaDB 10.5+): names, signedness,
//! character sets, ENUM / SET labels and the primary key, as they were when the row was written.
//!
//! This is how archived binlog files are typed without a server ([`super::binlog_files`]); the
//! live reader keeps using `information_schema` for the types (it knows the server's current
//! schema anyway). Without column names in the event (`MINIMAL`), there is nothing to map:
//! [`columns`] returns `None` and the caller needs a schema from DDL.
//!
//! The metadata fields list one entry per column *of a class*: signedness per numeric column,
//! a charset per character column (CHAR, VARCHAR, TEXT: real types STRING / VAR_STRING /
//! VARCHAR / BLOB), a charset and labels per ENUM / SET column. [`columns`] walks the columns
//! once, taking the next entry of each class a column belongs to.

use mysql_async::binlog::events::{OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType;
use mysql_common::collations::{Collation, CollationId};

use super::schema::{Column, Kind};

/// The charset name of a collation id (`None`: not a collation MySQL knows).
fn charset_of(collation: u16) -> Option<String> {
    let id = CollationId::from(collation);
    if id == CollationId::UNKNOWN_COLLATION_ID {
        return None;
    }
    Some(Collation::resolve(id).charset().to_string())
}

/// True for the columns the charset fields list. VECTOR (MySQL 9) is one of them: it is
/// logged as a binary string, with the `binary` charset.
fn is_character(t: ColumnType) -> bool {
    matches!(
        t,
        ColumnType::MYSQL_TYPE_VECTOR
            | ColumnType::MYSQL_TYPE_STRING
            | ColumnType::MYSQL_TYPE_VAR_STRING
            | ColumnType::MYSQL_TYPE_VARCHAR
            | ColumnType::MYSQL_TYPE_BLOB
            | ColumnType::MYSQL_TYPE_TINY_BLOB
            | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
            | ColumnType::MYSQL_TYPE_LONG_BLOB
    )
}

/// Collects a charset list: a default with exceptions by column index among the class, or one
/// collation per column of the class.
fn charsets(
    default: Option<(u16, Vec<(u64, u16)>)>,
    per_column: Option<Vec<u16>>,
    n: usize,
) -> Vec<Option<u16>> {
    if let Some(list) = per_column {
        return (0..n).map(|i| list.get(i).copied()).collect();
    }
    match default {
        Some((default, exceptions)) => (0..n)
            .map(|i| {
                Some(
                    exceptions
                        .iter()
                        .find(|(idx, _)| *idx == i as u64)
                        .map_or(default, |(_, c)| *c),
                )
            })
            .collect(),
        None => vec![None; n],
    }
}

/// Columns and primary-key column names.
pub type ColumnsAndKey = (Vec<Column>, Vec<String>);

/// What a TABLE_MAP event says of its columns.
struct Typed {
    columns: Vec<Column>,
    key: Vec<String>,
    /// The event names its columns (else `columns` have placeholder names `@i`).
    named: bool,
    /// The event has signedness flags.
    signedness: bool,
}

fn typed(tme: &TableMapEvent<'_>) -> Result<Typed, String> {
    let count = tme.columns_count() as usize;
    let mut names: Vec<String> = Vec::new();
    let mut unsigned_flags: Vec<bool> = Vec::new();
    let mut default_cs = None;
    let mut column_cs = None;
    let mut enum_set_default_cs = None;
    let mut enum_set_column_cs = None;
    let mut enum_labels: Vec<Vec<String>> = Vec::new();
    let mut set_labels: Vec<Vec<String>> = Vec::new();
    let mut key: Vec<u64> = Vec::new();
    for field in tme.iter_optional_meta() {
        match field.map_err(|e| format!("table map metadata: {e}"))? {
            OptionalMetadataField::ColumnName(cols) => {
                for n in cols.iter_names() {
                    names.push(n.map_err(|e| e.to_string())?.name().to_string());
                }
            }
            OptionalMetadataField::Signedness(bits) => {
                unsigned_flags = bits.iter().by_vals().collect();
            }
            OptionalMetadataField::DefaultCharset(d) => {
                let exceptions = d
                    .iter_non_default()
                    .map(|x| x.map(|x| (x.column_index(), x.charset())))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                default_cs = Some((d.default_charset(), exceptions));
            }
            OptionalMetadataField::ColumnCharset(c) => {
                column_cs = Some(
                    c.iter_charsets()
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string())?,
                );
            }
            OptionalMetadataField::EnumAndSetDefaultCharset(d) => {
                let exceptions = d
                    .iter_non_default()
                    .map(|x| x.map(|x| (x.column_index(), x.charset())))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                enum_set_default_cs = Some((d.default_charset(), exceptions));
            }
            OptionalMetadataField::EnumAndSetColumnCharset(c) => {
                enum_set_column_cs = Some(
                    c.iter_charsets()
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string())?,
                );
            }
            OptionalMetadataField::EnumStrValue(values) => {
                for v in values.iter_values() {
                    let v = v.map_err(|e| e.to_string())?;
                    enum_labels.push(v.values().iter().map(|l| l.value().into_owned()).collect());
                }
            }
            OptionalMetadataField::SetStrValue(values) => {
                for v in values.iter_values() {
                    let v = v.map_err(|e| e.to_string())?;
                    set_labels.push(v.values().iter().map(|l| l.value().into_owned()).collect());
                }
            }
            OptionalMetadataField::SimplePrimaryKey(pk) => {
                for i in pk.iter_indexes() {
                    key.push(i.map_err(|e| e.to_string())?);
                }
            }
            OptionalMetadataField::PrimaryKeyWithPrefix(pk) => {
                for k in pk.iter_keys() {
                    key.push(k.map_err(|e| e.to_string())?.column_index());
                }
            }
            _ => {}
        }
    }
    let named = names.len() == count;
    if !named {
        // Still typed by the event (signedness and charsets come with MINIMAL metadata too):
        // placeholder names, for [`overlay`].
        names = (0..count).map(|i| format!("@{i}")).collect();
    }
    let mut types = Vec::with_capacity(count);
    for i in 0..count {
        let t = tme
            .get_column_type(i)
            .map_err(|e| format!("column {i}: {e}"))?
            .ok_or_else(|| format!("column {i}: no type"))?;
        types.push(t);
    }
    let n_char = types.iter().filter(|t| is_character(**t)).count();
    let n_enum_set = types
        .iter()
        .filter(|t| matches!(t, ColumnType::MYSQL_TYPE_ENUM | ColumnType::MYSQL_TYPE_SET))
        .count();
    let char_cs = charsets(default_cs, column_cs, n_char);
    let enum_set_cs = charsets(enum_set_default_cs, enum_set_column_cs, n_enum_set);
    let (mut numeric_i, mut char_i, mut enum_set_i, mut enum_i, mut set_i) = (0, 0, 0, 0, 0);
    let mut columns = Vec::with_capacity(count);
    for (i, (name, t)) in names.iter().zip(&types).enumerate() {
        let meta = tme.get_column_metadata(i).unwrap_or(&[]);
        let fsp = u32::from(meta.first().copied().unwrap_or(0));
        let mut column = Column {
            name: name.clone(),
            kind: Kind::Text,
            data_type: String::new(),
            unsigned: false,
            fsp: 0,
            labels: Vec::new(),
            charset: None,
        };
        if t.is_numeric_type() {
            column.unsigned = unsigned_flags.get(numeric_i).copied().unwrap_or(false);
            numeric_i += 1;
        }
        let (kind, data_type) = match t {
            ColumnType::MYSQL_TYPE_TINY => (Kind::Int, "tinyint"),
            ColumnType::MYSQL_TYPE_SHORT => (Kind::Int, "smallint"),
            ColumnType::MYSQL_TYPE_INT24 => (Kind::Int, "mediumint"),
            ColumnType::MYSQL_TYPE_LONG => (Kind::Int, "int"),
            ColumnType::MYSQL_TYPE_LONGLONG => (Kind::Int, "bigint"),
            ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
                (Kind::Decimal, "decimal")
            }
            ColumnType::MYSQL_TYPE_FLOAT => (Kind::Float, "float"),
            ColumnType::MYSQL_TYPE_DOUBLE => (Kind::Double, "double"),
            ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => (Kind::Date, "date"),
            ColumnType::MYSQL_TYPE_DATETIME => (Kind::DateTime, "datetime"),
            ColumnType::MYSQL_TYPE_DATETIME2 => {
                column.fsp = fsp;
                (Kind::DateTime, "datetime")
            }
            ColumnType::MYSQL_TYPE_TIMESTAMP => (Kind::Timestamp, "timestamp"),
            ColumnType::MYSQL_TYPE_TIMESTAMP2 => {
                column.fsp = fsp;
                (Kind::Timestamp, "timestamp")
            }
            ColumnType::MYSQL_TYPE_TIME => (Kind::Time, "time"),
            ColumnType::MYSQL_TYPE_TIME2 => {
                column.fsp = fsp;
                (Kind::Time, "time")
            }
            ColumnType::MYSQL_TYPE_YEAR => (Kind::Year, "year"),
            ColumnType::MYSQL_TYPE_BIT => (Kind::Bytes, "bit"),
            ColumnType::MYSQL_TYPE_GEOMETRY => (Kind::Bytes, "geometry"),
            ColumnType::MYSQL_TYPE_JSON => (Kind::Text, "json"),
            ColumnType::MYSQL_TYPE_ENUM | ColumnType::MYSQL_TYPE_SET => {
                column.charset = enum_set_cs
                    .get(enum_set_i)
                    .copied()
                    .flatten()
                    .and_then(charset_of);
                enum_set_i += 1;
                if *t == ColumnType::MYSQL_TYPE_ENUM {
                    column.labels = enum_labels.get(enum_i).cloned().unwrap_or_default();
                    enum_i += 1;
                    (Kind::Enum, "enum")
                } else {
                    column.labels = set_labels.get(set_i).cloned().unwrap_or_default();
                    set_i += 1;
                    (Kind::Set, "set")
                }
            }
            ColumnType::MYSQL_TYPE_VECTOR => {
                char_i += 1;
                (Kind::Vector, "vector")
            }
            t if is_character(*t) => {
                let collation = char_cs.get(char_i).copied().flatten();
                char_i += 1;
                let charset = collation.and_then(charset_of);
                let binary = collation == Some(63);
                let blob = !matches!(
                    t,
                    ColumnType::MYSQL_TYPE_STRING
                        | ColumnType::MYSQL_TYPE_VAR_STRING
                        | ColumnType::MYSQL_TYPE_VARCHAR
                );
                column.charset = charset;
                match (binary, blob) {
                    (true, true) => (Kind::Bytes, "blob"),
                    (true, false) => (Kind::Bytes, "varbinary"),
                    (false, true) => (Kind::Text, "text"),
                    (false, false) => (Kind::Text, "varchar"),
                }
            }
            other => return Err(format!("column `{name}`: type {other:?} is not supported")),
        };
        column.kind = kind;
        column.data_type = data_type.to_string();
        columns.push(column);
    }
    let key = key
        .iter()
        .map(|i| {
            names
                .get(*i as usize)
                .cloned()
                .ok_or_else(|| format!("primary key column {i} of {count}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Typed {
        columns,
        key,
        named,
        signedness: !unsigned_flags.is_empty(),
    })
}

/// The columns and primary key of `tme`, from its optional metadata; `Ok(None)` when it has no
/// column names. An error says what is malformed.
pub fn columns(tme: &TableMapEvent<'_>) -> Result<Option<ColumnsAndKey>, String> {
    let typed = typed(tme)?;
    Ok(typed.named.then_some((typed.columns, typed.key)))
}

/// Corrects columns typed from DDL (by position) with what the event itself says: signedness
/// and character sets are logged even with `binlog_row_metadata=MINIMAL`, and describe the rows
/// as written, which a declared schema may not.
pub fn overlay(tme: &TableMapEvent<'_>, declared: &mut [Column]) -> Result<(), String> {
    let typed = typed(tme)?;
    if typed.columns.len() != declared.len() {
        return Ok(());
    }
    for (d, t) in declared.iter_mut().zip(&typed.columns) {
        if typed.signedness && t.kind == Kind::Int && d.kind == Kind::Int {
            d.unsigned = t.unsigned;
        }
        if let Some(cs) = &t.charset
            && matches!(d.kind, Kind::Text | Kind::Enum | Kind::Set)
        {
            if cs == "binary" && d.kind == Kind::Text {
                d.kind = Kind::Bytes;
            } else {
                d.charset = Some(cs.clone());
            }
        }
    }
    Ok(())
}
