//! Arrow schema → Avro record schema.
//!
//! The mapping is fixed so that any Avro reader (Java, fastavro, apache-avro) sees the same
//! logical types Strata wrote:
//!
//! | Arrow | Avro |
//! |---|---|
//! | Boolean | `boolean` |
//! | Int8, Int16, Int32, UInt8, UInt16 | `int` |
//! | Int64, UInt32, UInt64 (values above `i64::MAX` are refused when encoding) | `long` |
//! | Float32 / Float64 | `float` / `double` |
//! | Utf8, LargeUtf8, Utf8View | `string` |
//! | Binary, LargeBinary, BinaryView | `bytes` |
//! | Decimal128(p, s) | `bytes` with logical type `decimal` (precision p, scale s) |
//! | Date32 | `int` with logical type `date` |
//! | Timestamp(s / ms, tz) | `long` `timestamp-millis` (seconds are multiplied by 1000) |
//! | Timestamp(µs, tz) | `long` `timestamp-micros` |
//! | Timestamp(ns, tz) | `long` `timestamp-nanos` |
//! | Timestamp(…, no tz) | the `local-timestamp-*` variants |
//! | List / LargeList | `array` |
//! | Struct | nested `record` named after its path (`<record>_<column>`) |
//! | Map (string keys) | `map` |
//!
//! A nullable field becomes the union `["null", T]` with `"default": null`, so a later schema
//! that adds a nullable column stays BACKWARD compatible. Field names must be Avro names
//! (`[A-Za-z_][A-Za-z0-9_]*`): lineage columns such as `_file` are fine, `device-id` or `a.b`
//! are refused with the column's path — rename them in the pipeline. Unsupported Arrow types
//! (intervals, unions, dictionaries, …) are refused the same way, at build time.

use std::collections::HashSet;

use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use serde_json::{Value as Json, json};

use crate::{ConnectorError, Result};

/// The Avro schema of a pipeline's output: its JSON text (what the registry stores) and the
/// parsed form used by the encoder.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    /// The schema as JSON.
    pub json: Json,
    /// The parsed schema.
    pub schema: apache_avro::Schema,
}

impl AvroSchema {
    /// The schema as compact JSON text (the body sent to the registry).
    pub fn text(&self) -> String {
        self.json.to_string()
    }
}

/// True when `name` is a valid Avro name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_avro_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Maps an Arrow schema to an Avro record schema named `record_name` in `namespace`.
///
/// ```
/// use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
/// use strata_connectors::avro::schema::arrow_to_avro;
///
/// let schema = Schema::new(vec![
///     Field::new("device_id", DataType::Utf8, false),
///     Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
///     Field::new("temperature", DataType::Float64, true),
/// ]);
/// let avro = arrow_to_avro(&schema, "iot_events", Some("strata")).unwrap();
/// assert_eq!(avro.json["fields"][1]["type"]["logicalType"], "timestamp-micros");
/// assert_eq!(avro.json["fields"][2]["type"][0], "null");
///
/// let bad = Schema::new(vec![Field::new("device-id", DataType::Utf8, false)]);
/// assert!(arrow_to_avro(&bad, "iot_events", None).unwrap_err().to_string().contains("device-id"));
/// ```
pub fn arrow_to_avro(
    schema: &ArrowSchema,
    record_name: &str,
    namespace: Option<&str>,
) -> Result<AvroSchema> {
    if !is_avro_name(record_name) {
        return Err(ConnectorError::AvroSchema {
            column: record_name.to_string(),
            reason: "the record name is not a valid Avro name ([A-Za-z_][A-Za-z0-9_]*)".into(),
            hint: "pass another record name (strata avro encode --record-name)",
        });
    }
    if let Some(ns) = namespace
        && !ns.split('.').all(is_avro_name)
    {
        return Err(ConnectorError::AvroSchema {
            column: ns.to_string(),
            reason: "the namespace is not a dotted sequence of Avro names".into(),
            hint: "use a namespace such as `strata.silver`",
        });
    }
    let mut names = HashSet::new();
    names.insert(record_name.to_string());
    let mut json = record(schema.fields().iter(), record_name, "", &mut names)?;
    if let (Some(ns), Json::Object(map)) = (namespace, &mut json) {
        map.insert("namespace".into(), json!(ns));
    }
    let parsed =
        crate::no_panic::avro_schema_from_json(&json).map_err(|e| ConnectorError::AvroSchema {
            column: record_name.to_string(),
            reason: format!("the generated schema does not parse: {e}"),
            hint: "this is a bug in Strata's Arrow → Avro mapping; please report it",
        })?;
    Ok(AvroSchema {
        json,
        schema: parsed,
    })
}

fn record<'a>(
    fields: impl Iterator<Item = &'a std::sync::Arc<Field>>,
    name: &str,
    path: &str,
    names: &mut HashSet<String>,
) -> Result<Json> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for f in fields {
        let col = join(path, f.name());
        if !is_avro_name(f.name()) {
            return Err(ConnectorError::AvroSchema {
                column: col,
                reason: "not a valid Avro field name: Avro names match [A-Za-z_][A-Za-z0-9_]*"
                    .into(),
                hint: "rename the column in the pipeline (a `rename` or `select` step)",
            });
        }
        if !seen.insert(f.name().clone()) {
            return Err(ConnectorError::AvroSchema {
                column: col,
                reason: "the column name appears twice".into(),
                hint: "give each column a distinct name",
            });
        }
        let t = field_type(f, &col, &format!("{name}_{}", f.name()), names)?;
        if f.is_nullable() {
            out.push(json!({"name": f.name(), "type": ["null", t], "default": null}));
        } else {
            out.push(json!({"name": f.name(), "type": t}));
        }
    }
    Ok(json!({"type": "record", "name": name, "fields": out}))
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// A record name not used yet in this schema (Avro names must be unique).
fn unique(base: &str, names: &mut HashSet<String>) -> String {
    let mut candidate = base.to_string();
    let mut n = 2;
    while !names.insert(candidate.clone()) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    candidate
}

/// The Avro type of a value of `f` (without the nullable union).
fn field_type(
    f: &Field,
    col: &str,
    record_name: &str,
    names: &mut HashSet<String>,
) -> Result<Json> {
    let unsupported = |what: String| ConnectorError::AvroSchema {
        column: col.to_string(),
        reason: what,
        hint: "cast the column to a supported type in the pipeline (see docs/streaming.md)",
    };
    Ok(match f.data_type() {
        DataType::Boolean => json!("boolean"),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => {
            json!("int")
        }
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => json!("long"),
        DataType::Float32 => json!("float"),
        DataType::Float64 => json!("double"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => json!("string"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => json!("bytes"),
        DataType::Decimal128(p, s) => {
            if *s < 0 || *s as u8 > *p {
                return Err(unsupported(format!(
                    "decimal({p},{s}): Avro decimals need 0 <= scale <= precision"
                )));
            }
            json!({"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s})
        }
        DataType::Date32 => json!({"type": "int", "logicalType": "date"}),
        DataType::Timestamp(unit, tz) => {
            let base = match unit {
                TimeUnit::Second | TimeUnit::Millisecond => "timestamp-millis",
                TimeUnit::Microsecond => "timestamp-micros",
                TimeUnit::Nanosecond => "timestamp-nanos",
            };
            let logical = if tz.is_some() {
                base.to_string()
            } else {
                format!("local-{base}")
            };
            json!({"type": "long", "logicalType": logical})
        }
        DataType::List(item) | DataType::LargeList(item) => {
            let t = field_type(item, &format!("{col}[]"), record_name, names)?;
            let items = if item.is_nullable() {
                json!(["null", t])
            } else {
                t
            };
            json!({"type": "array", "items": items})
        }
        DataType::Struct(children) => {
            let name = unique(record_name, names);
            record(children.iter(), &name, col, names)?
        }
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(unsupported("a map whose entries are not a struct".into()));
            };
            if kv.len() != 2 || !matches!(kv[0].data_type(), DataType::Utf8 | DataType::LargeUtf8) {
                return Err(unsupported(
                    "Avro maps need string keys; this map's keys are not strings".into(),
                ));
            }
            let value = &kv[1];
            let t = field_type(value, &format!("{col}{{}}"), record_name, names)?;
            let values = if value.is_nullable() {
                json!(["null", t])
            } else {
                t
            };
            json!({"type": "map", "values": values})
        }
        other => {
            return Err(unsupported(format!(
                "Arrow type {other} has no Avro mapping"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::Fields;

    use super::*;

    #[test]
    fn maps_every_supported_type_and_parses() {
        let point = Fields::from(vec![
            Field::new("lat", DataType::Float64, true),
            Field::new("lon", DataType::Float64, true),
        ]);
        let schema = ArrowSchema::new(vec![
            Field::new("b", DataType::Boolean, false),
            Field::new("i8", DataType::Int8, true),
            Field::new("u64", DataType::UInt64, false),
            Field::new("f", DataType::Float32, true),
            Field::new("s", DataType::LargeUtf8, true),
            Field::new("bin", DataType::Binary, true),
            Field::new("d", DataType::Decimal128(12, 2), true),
            Field::new("day", DataType::Date32, true),
            Field::new(
                "ms",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "ntz",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new_list("tags", Field::new("item", DataType::Utf8, true), true),
            Field::new("loc", DataType::Struct(point.clone()), true),
            Field::new("loc2", DataType::Struct(point), true),
            Field::new_map(
                "attrs",
                "entries",
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Int64, true),
                false,
                true,
            ),
        ]);
        let avro = arrow_to_avro(&schema, "rec", Some("strata.test")).unwrap();
        let f = &avro.json["fields"];
        assert_eq!(f[0]["type"], "boolean");
        assert_eq!(f[1]["type"], json!(["null", "int"]));
        assert_eq!(f[1]["default"], Json::Null);
        assert_eq!(f[2]["type"], "long");
        assert_eq!(f[6]["type"][1]["logicalType"], "decimal");
        assert_eq!(f[6]["type"][1]["precision"], 12);
        assert_eq!(f[7]["type"][1]["logicalType"], "date");
        assert_eq!(f[8]["type"][1]["logicalType"], "timestamp-millis");
        assert_eq!(f[9]["type"][1]["logicalType"], "local-timestamp-micros");
        assert_eq!(f[10]["type"][1]["items"], json!(["null", "string"]));
        assert_eq!(f[11]["type"][1]["name"], "rec_loc");
        assert_eq!(f[12]["type"][1]["name"], "rec_loc2");
        assert_eq!(f[13]["type"][1]["values"], json!(["null", "long"]));
        assert!(matches!(avro.schema, apache_avro::Schema::Record(_)));
    }

    #[test]
    fn invalid_names_and_types_name_the_column() {
        let s = ArrowSchema::new(vec![Field::new(
            "loc",
            DataType::Struct(Fields::from(vec![Field::new("a.b", DataType::Int32, true)])),
            true,
        )]);
        let e = arrow_to_avro(&s, "r", None).unwrap_err().to_string();
        assert!(e.contains("`loc.a.b`") && e.contains("rename"), "{e}");

        let s = ArrowSchema::new(vec![Field::new(
            "dur",
            DataType::Duration(TimeUnit::Second),
            true,
        )]);
        let e = arrow_to_avro(&s, "r", None).unwrap_err().to_string();
        assert!(e.contains("`dur`") && e.contains("no Avro mapping"), "{e}");

        let ok = ArrowSchema::new(vec![Field::new("_file", DataType::Utf8, false)]);
        assert!(arrow_to_avro(&ok, "r", None).is_ok());
        assert!(arrow_to_avro(&ok, "my-record", None).is_err());
        let _ = Arc::new(ok);
    }
}
