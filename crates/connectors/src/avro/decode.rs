//! Confluent-framed Avro messages → JSON values or an Arrow RecordBatch of a target schema.
//!
//! A message is `0x00`, a big-endian `u32` schema id, then the Avro datum. The writer schema is
//! fetched by id from the registry (cached by [`RegistryClient`]) — so messages written by any
//! Confluent serializer decode, whatever schema version they used. Conversion to Arrow matches
//! fields **by name** and accepts the usual promotions (int → long, int/long → double, millis →
//! micros, decimals of a smaller scale); a value that cannot fit the target column (text in an
//! integer column, a lossy decimal rescale, a missing non-nullable field) is an error naming the
//! message and the column. Trailing bytes after the datum are an error: they mean the writer used
//! another schema than its id says.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, LargeBinaryArray, LargeStringArray, ListArray, MapArray,
    PrimitiveArray, RecordBatch, StringArray, StructArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use serde_json::{Map as JsonMap, Value as Json};

use super::encode::MAGIC_BYTE;
use crate::registry::client::RegistryClient;
use crate::{ConnectorError, Result};

/// Splits a Confluent-framed message into its schema id and Avro payload.
pub fn unframe(message: &[u8]) -> Result<(u32, &[u8])> {
    if message.len() < 5 {
        return Err(ConnectorError::AvroDecode {
            message: format!("of {} bytes", message.len()),
            reason: "shorter than the 5-byte Confluent header".into(),
            hint: "the producer did not use a Schema Registry serializer",
        });
    }
    if message[0] != MAGIC_BYTE {
        return Err(ConnectorError::AvroDecode {
            message: "header".into(),
            reason: format!("magic byte is {:#04x}, expected 0x00", message[0]),
            hint: "the producer did not use a Schema Registry serializer (or this is a key, not a value)",
        });
    }
    let id = u32::from_be_bytes([message[1], message[2], message[3], message[4]]);
    Ok((id, &message[5..]))
}

/// A writer schema with its named types, ready to decode datums.
#[derive(Debug, Clone)]
pub struct WriterSchema {
    /// Registry id.
    pub id: u32,
    /// The schema text as the registry returned it.
    pub text: String,
    /// The parsed schema.
    pub schema: Schema,
    names: HashMap<Name, Schema>,
}

impl WriterSchema {
    /// Parses a schema text fetched for `id`.
    pub fn parse(id: u32, text: &str) -> Result<Self> {
        let schema = crate::no_panic::avro_schema_from_str(text).map_err(|e| {
            ConnectorError::AvroDecode {
                message: format!("with schema id {id}"),
                reason: format!("the registry's schema does not parse: {e}"),
                hint: "only AVRO schemas are supported; check the subject's schema type",
            }
        })?;
        Self::from_schema(id, text.to_string(), schema)
    }

    /// Wraps an already parsed schema.
    pub fn from_schema(id: u32, text: String, schema: Schema) -> Result<Self> {
        check_decimal_scales(&schema).map_err(|reason| ConnectorError::AvroDecode {
            message: format!("with schema id {id}"),
            reason,
            hint: "decimals of a scale over 38 (Arrow's and Iceberg's limit) are not supported",
        })?;
        let names = ResolvedSchema::try_from(&schema)
            .map_err(|e| ConnectorError::AvroDecode {
                message: format!("with schema id {id}"),
                reason: format!("unresolved named type in the schema: {e}"),
                hint: "schema references are not supported",
            })?
            .get_names()
            .iter()
            .map(|(k, v)| (k.clone(), (*v).clone()))
            .collect();
        Ok(WriterSchema {
            id,
            text,
            schema,
            names,
        })
    }

    /// Decodes one Avro datum (no header) written with this schema. The datum is walked by
    /// [`super::guard`] first: apache-avro itself would abort the process on a hostile block
    /// count.
    pub fn decode(&self, payload: &[u8]) -> Result<Value> {
        set_allocation_cap();
        super::guard::check_datum(&self.schema, &self.names, payload).map_err(|reason| {
            ConnectorError::AvroDecode {
                message: format!("with schema id {}", self.id),
                reason,
                hint: "the payload is corrupt, hostile or not written with its writer schema",
            }
        })?;
        let mut reader = payload;
        let value = apache_avro::from_avro_datum(&self.schema, &mut reader, None).map_err(|e| {
            ConnectorError::AvroDecode {
                message: format!("with schema id {}", self.id),
                reason: e.to_string(),
                hint: "the payload does not match its writer schema: corrupt or mis-framed message",
            }
        })?;
        if !reader.is_empty() {
            return Err(ConnectorError::AvroDecode {
                message: format!("with schema id {}", self.id),
                reason: format!("{} bytes left after the datum", reader.len()),
                hint: "the payload was written with another schema than its id says",
            });
        }
        Ok(value)
    }

    /// The value as JSON: records → objects, unions → their branch, timestamps → RFC 3339
    /// text (`Z` for UTC types), dates → `YYYY-MM-DD`, decimals → exact decimal text, bytes →
    /// base64.
    pub fn to_json(&self, value: &Value) -> Json {
        to_json(Node::new(value, &self.schema, &self.names))
    }
}

/// Caps apache-avro's own allocations of strings, bytes and block reservations at the message
/// cap (its default is 512 MiB). The setting is process-wide and first-come; this runs before
/// any decode.
fn set_allocation_cap() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        apache_avro::util::max_allocation_bytes(super::guard::MAX_MESSAGE_BYTES);
    });
}

/// The largest decimal scale accepted in a writer schema: Arrow's and Iceberg's limit. A scale
/// from the registry is also the padding `decimal_text` writes, so it must be bounded.
pub const MAX_DECIMAL_SCALE: usize = 38;

fn check_decimal_scales(schema: &Schema) -> std::result::Result<(), String> {
    match schema {
        Schema::Decimal(d) if d.scale > MAX_DECIMAL_SCALE || d.scale > d.precision => Err(format!(
            "a decimal of precision {} and scale {} (the scale must be at most {MAX_DECIMAL_SCALE} \
             and at most the precision)",
            d.precision, d.scale
        )),
        Schema::Record(r) => r
            .fields
            .iter()
            .try_for_each(|f| check_decimal_scales(&f.schema)),
        Schema::Array(a) => check_decimal_scales(&a.items),
        Schema::Map(m) => check_decimal_scales(&m.types),
        Schema::Union(u) => u.variants().iter().try_for_each(check_decimal_scales),
        _ => Ok(()),
    }
}

/// Decodes framed messages with writer schemas fetched (and cached) from a registry.
#[derive(Debug, Clone)]
pub struct AvroDecoder {
    client: Arc<RegistryClient>,
}

impl AvroDecoder {
    /// A decoder over `client`.
    pub fn new(client: Arc<RegistryClient>) -> Self {
        AvroDecoder { client }
    }

    /// The writer schema and decoded value of one framed message.
    pub async fn decode(&self, message: &[u8]) -> Result<(Arc<WriterSchema>, Value)> {
        let (id, payload) = unframe(message)?;
        let writer = self.client.schema_by_id(id).await?;
        let value = writer.decode(payload)?;
        Ok((writer, value))
    }

    /// One framed message as a JSON value (see [`WriterSchema::to_json`]).
    pub async fn decode_json(&self, message: &[u8]) -> Result<Json> {
        let (writer, value) = self.decode(message).await?;
        Ok(writer.to_json(&value))
    }

    /// Framed messages → one batch of `target` (fields matched by name).
    pub async fn decode_batch(&self, messages: &[&[u8]], target: SchemaRef) -> Result<RecordBatch> {
        let mut rows = Vec::with_capacity(messages.len());
        for m in messages {
            rows.push(self.decode(m).await?);
        }
        values_to_batch(&rows, target)
    }
}

/// Decoded records (each with its writer schema) → a batch of `target`.
pub fn values_to_batch(
    rows: &[(Arc<WriterSchema>, Value)],
    target: SchemaRef,
) -> Result<RecordBatch> {
    let nodes: Vec<Option<Node>> = rows
        .iter()
        .map(|(w, v)| Node::new(v, &w.schema, &w.names).normalized())
        .collect();
    let mut columns = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let children = record_children(&nodes, field.name())?;
        columns.push(column(&children, field, field.name())?);
    }
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(target, columns, &options).map_err(|e| {
        ConnectorError::AvroDecode {
            message: "batch".into(),
            reason: e.to_string(),
            hint: "the target schema does not fit the decoded values",
        }
    })
}

/// A value with the schema node that describes it.
#[derive(Clone, Copy)]
struct Node<'a> {
    v: &'a Value,
    s: &'a Schema,
    names: &'a HashMap<Name, Schema>,
}

impl<'a> Node<'a> {
    fn new(v: &'a Value, s: &'a Schema, names: &'a HashMap<Name, Schema>) -> Self {
        Node { v, s, names }
    }

    /// Follows references and union branches; `None` for null.
    fn normalized(self) -> Option<Node<'a>> {
        let mut n = self;
        loop {
            match (n.v, n.s) {
                (Value::Null, _) => return None,
                (_, Schema::Ref { name }) => {
                    let names = n.names;
                    n.s = names.get(name).or_else(|| {
                        names
                            .iter()
                            .find(|(k, _)| k.name == name.name)
                            .map(|(_, s)| s)
                    })?;
                }
                (Value::Union(i, inner), Schema::Union(u)) => {
                    n.s = u.variants().get(*i as usize)?;
                    n.v = inner;
                }
                (Value::Union(_, inner), _) => n.v = inner,
                _ => return Some(n),
            }
        }
    }
}

fn err(path: &str, reason: String) -> ConnectorError {
    ConnectorError::AvroDecode {
        message: format!("column `{path}`"),
        reason,
        hint: "the target Arrow schema does not fit the writer schema of these messages",
    }
}

/// The field `name` of every (normalized) record node.
fn record_children<'a>(nodes: &[Option<Node<'a>>], name: &str) -> Result<Vec<Option<Node<'a>>>> {
    nodes
        .iter()
        .map(|n| {
            let Some(n) = n else { return Ok(None) };
            match (n.v, n.s) {
                (Value::Record(fields), Schema::Record(rs)) => {
                    let Some(&pos) = rs.lookup.get(name) else {
                        return Ok(None);
                    };
                    let (Some((_, v)), Some(f)) = (fields.get(pos), rs.fields.get(pos)) else {
                        return Ok(None);
                    };
                    Ok(Node::new(v, &f.schema, n.names).normalized())
                }
                (v, _) => Err(err(name, format!("expected a record, found {v:?}"))),
            }
        })
        .collect()
}

fn nulls_of(nodes: &[Option<Node>]) -> Option<NullBuffer> {
    let valid: Vec<bool> = nodes.iter().map(Option::is_some).collect();
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

fn int_of(n: &Node) -> Option<i64> {
    match n.v {
        Value::Int(v) | Value::Date(v) | Value::TimeMillis(v) => Some(i64::from(*v)),
        Value::Long(v)
        | Value::TimeMicros(v)
        | Value::TimestampMillis(v)
        | Value::TimestampMicros(v)
        | Value::TimestampNanos(v)
        | Value::LocalTimestampMillis(v)
        | Value::LocalTimestampMicros(v)
        | Value::LocalTimestampNanos(v) => Some(*v),
        _ => None,
    }
}

fn prim_col<T: ArrowPrimitiveType>(
    nodes: &[Option<Node>],
    dt: &DataType,
    path: &str,
    f: impl Fn(&Node) -> Option<T::Native>,
) -> Result<ArrayRef> {
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        out.push(match n {
            None => None,
            Some(n) => Some(
                f(n).ok_or_else(|| err(path, format!("{:?} does not fit Arrow type {dt}", n.v)))?,
            ),
        });
    }
    Ok(Arc::new(
        out.into_iter()
            .collect::<PrimitiveArray<T>>()
            .with_data_type(dt.clone()),
    ))
}

/// Unscaled value and scale of a decimal node.
fn decimal_of(n: &Node) -> Option<(i128, u32)> {
    let Value::Decimal(d) = n.v else { return None };
    let scale = match n.s {
        Schema::Decimal(ds) => ds.scale as u32,
        _ => 0,
    };
    let bytes = Vec::<u8>::try_from(d).ok()?;
    Some((i128_from_be(&bytes)?, scale))
}

/// A big-endian two's-complement integer of any length, if it fits an i128.
pub(crate) fn i128_from_be(bytes: &[u8]) -> Option<i128> {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let fill = if negative { 0xFF } else { 0x00 };
    let mut b = bytes;
    while b.len() > 16 {
        if b[0] != fill {
            return None;
        }
        b = &b[1..];
    }
    // Stripping sign-extension bytes must not change the sign: 0x00 0x80 00… is +2^127, which
    // does not fit, not the negative number its last 16 bytes spell.
    if bytes.len() > 16 && b.first().is_some_and(|x| (x & 0x80 != 0) != negative) {
        return None;
    }
    let mut buf = [fill; 16];
    buf[16 - b.len()..].copy_from_slice(b);
    Some(i128::from_be_bytes(buf))
}

fn rescale(v: i128, from: u32, to: i8) -> Option<i128> {
    let to = u32::try_from(to).ok()?;
    if to >= from {
        v.checked_mul(10i128.checked_pow(to - from)?)
    } else {
        let div = 10i128.checked_pow(from - to)?;
        (v % div == 0).then(|| v / div)
    }
}

/// Nanoseconds since the epoch of a timestamp node (plain longs count as the target unit).
fn timestamp_as(n: &Node, unit: TimeUnit) -> Option<i64> {
    let (v, per_sec): (i64, i64) = match n.v {
        Value::TimestampMillis(v) | Value::LocalTimestampMillis(v) => (*v, 1_000),
        Value::TimestampMicros(v) | Value::LocalTimestampMicros(v) => (*v, 1_000_000),
        Value::TimestampNanos(v) | Value::LocalTimestampNanos(v) => (*v, 1_000_000_000),
        Value::Long(v) => return Some(*v),
        Value::Int(v) => return Some(i64::from(*v)),
        _ => return None,
    };
    let target: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    if target >= per_sec {
        v.checked_mul(target / per_sec)
    } else {
        Some(v.div_euclid(per_sec / target))
    }
}

fn column(nodes: &[Option<Node>], field: &Field, path: &str) -> Result<ArrayRef> {
    if !field.is_nullable()
        && let Some(i) = nodes.iter().position(Option::is_none)
    {
        return Err(err(
            path,
            format!("row {i} has no value (null or missing field) but the column is not null"),
        ));
    }
    let dt = field.data_type();
    macro_rules! int {
        ($t:ty) => {
            prim_col::<$t>(nodes, dt, path, |n| {
                int_of(n).and_then(|v| v.try_into().ok())
            })
        };
    }
    match dt {
        DataType::Boolean => {
            let mut out = Vec::with_capacity(nodes.len());
            for n in nodes {
                out.push(match n {
                    None => None,
                    Some(Node {
                        v: Value::Boolean(b),
                        ..
                    }) => Some(*b),
                    Some(n) => return Err(err(path, format!("{:?} is not a boolean", n.v))),
                });
            }
            Ok(Arc::new(BooleanArray::from(out)))
        }
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => prim_col::<Float32Type>(nodes, dt, path, |n| match n.v {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f32),
            Value::Long(i) => Some(*i as f32),
            _ => None,
        }),
        DataType::Float64 => prim_col::<Float64Type>(nodes, dt, path, |n| match n.v {
            Value::Double(f) => Some(*f),
            Value::Float(f) => Some(f64::from(*f)),
            Value::Int(i) => Some(f64::from(*i)),
            Value::Long(i) => Some(*i as f64),
            _ => None,
        }),
        DataType::Date32 => prim_col::<Date32Type>(nodes, dt, path, |n| match n.v {
            Value::Date(d) | Value::Int(d) => Some(*d),
            _ => None,
        }),
        DataType::Decimal128(_, scale) => prim_col::<Decimal128Type>(nodes, dt, path, |n| {
            let (v, s) = match n.v {
                Value::Int(i) => (i128::from(*i), 0),
                Value::Long(i) => (i128::from(*i), 0),
                _ => decimal_of(n)?,
            };
            rescale(v, s, *scale)
        }),
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => {
                prim_col::<TimestampSecondType>(nodes, dt, path, |n| timestamp_as(n, *unit))
            }
            TimeUnit::Millisecond => {
                prim_col::<TimestampMillisecondType>(nodes, dt, path, |n| timestamp_as(n, *unit))
            }
            TimeUnit::Microsecond => {
                prim_col::<TimestampMicrosecondType>(nodes, dt, path, |n| timestamp_as(n, *unit))
            }
            TimeUnit::Nanosecond => {
                prim_col::<TimestampNanosecondType>(nodes, dt, path, |n| timestamp_as(n, *unit))
            }
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let mut out: Vec<Option<String>> = Vec::with_capacity(nodes.len());
            for n in nodes {
                out.push(match n {
                    None => None,
                    Some(n) => Some(match n.v {
                        Value::String(s) | Value::Enum(_, s) => s.clone(),
                        Value::Uuid(u) => u.to_string(),
                        v => return Err(err(path, format!("{v:?} is not a string"))),
                    }),
                });
            }
            Ok(match dt {
                DataType::Utf8 => Arc::new(StringArray::from(out)),
                DataType::LargeUtf8 => Arc::new(LargeStringArray::from(out)),
                _ => Arc::new(arrow::array::StringViewArray::from_iter(out)),
            })
        }
        DataType::Binary | DataType::LargeBinary => {
            let mut out: Vec<Option<&[u8]>> = Vec::with_capacity(nodes.len());
            for n in nodes {
                out.push(match n {
                    None => None,
                    Some(n) => Some(match n.v {
                        Value::Bytes(b) | Value::Fixed(_, b) => b.as_slice(),
                        Value::String(s) => s.as_bytes(),
                        v => return Err(err(path, format!("{v:?} is not bytes"))),
                    }),
                });
            }
            Ok(if matches!(dt, DataType::Binary) {
                Arc::new(BinaryArray::from(out))
            } else {
                Arc::new(LargeBinaryArray::from(out))
            })
        }
        DataType::List(item) => {
            let mut offsets = Vec::with_capacity(nodes.len() + 1);
            offsets.push(0i32);
            let mut children = Vec::new();
            for n in nodes {
                if let Some(n) = n {
                    let (Value::Array(items), Schema::Array(a)) = (n.v, n.s) else {
                        return Err(err(path, format!("{:?} is not an array", n.v)));
                    };
                    children.extend(
                        items
                            .iter()
                            .map(|v| Node::new(v, &a.items, n.names).normalized()),
                    );
                }
                offsets.push(
                    i32::try_from(children.len())
                        .map_err(|_| err(path, "more than 2^31 list items in one batch".into()))?,
                );
            }
            let values = column(&children, item, &format!("{path}[]"))?;
            ListArray::try_new(
                Arc::clone(item),
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                values,
                nulls_of(nodes),
            )
            .map(|a| Arc::new(a) as ArrayRef)
            .map_err(|e| err(path, e.to_string()))
        }
        DataType::Struct(fields) => {
            let nulls = nulls_of(nodes);
            let mut children = Vec::with_capacity(fields.len());
            for f in fields {
                let sub = record_children(nodes, f.name())?;
                // A null parent hides its children: give non-nullable children a default slot.
                children.push(column_under_parent(
                    &sub,
                    f,
                    &format!("{path}.{}", f.name()),
                    nodes,
                )?);
            }
            StructArray::try_new(fields.clone(), children, nulls)
                .map(|a| Arc::new(a) as ArrayRef)
                .map_err(|e| err(path, e.to_string()))
        }
        DataType::Map(entries, ordered) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(err(path, "map entries are not a struct".into()));
            };
            let mut offsets = vec![0i32];
            let mut keys: Vec<String> = Vec::new();
            let mut values = Vec::new();
            for n in nodes {
                if let Some(n) = n {
                    let (Value::Map(m), Schema::Map(ms)) = (n.v, n.s) else {
                        return Err(err(path, format!("{:?} is not a map", n.v)));
                    };
                    let mut sorted: Vec<_> = m.iter().collect();
                    sorted.sort_by(|a, b| a.0.cmp(b.0));
                    for (k, v) in sorted {
                        keys.push(k.clone());
                        values.push(Node::new(v, &ms.types, n.names).normalized());
                    }
                }
                offsets
                    .push(i32::try_from(keys.len()).map_err(|_| {
                        err(path, "more than 2^31 map entries in one batch".into())
                    })?);
            }
            let key_array: ArrayRef = match kv[0].data_type() {
                DataType::LargeUtf8 => Arc::new(LargeStringArray::from(keys)),
                _ => Arc::new(StringArray::from(keys)),
            };
            let value_array = column(&values, &kv[1], &format!("{path}{{}}"))?;
            let entries_array =
                StructArray::try_new(kv.clone(), vec![key_array, value_array], None)
                    .map_err(|e| err(path, e.to_string()))?;
            MapArray::try_new(
                Arc::clone(entries),
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                entries_array,
                nulls_of(nodes),
                *ordered,
            )
            .map(|a| Arc::new(a) as ArrayRef)
            .map_err(|e| err(path, e.to_string()))
        }
        other => Err(err(
            path,
            format!("Arrow type {other} is not supported as a target"),
        )),
    }
}

/// A child column of a struct: where the parent is null, a non-nullable child gets a null slot
/// that the parent's null mask hides (Arrow allows that).
fn column_under_parent(
    nodes: &[Option<Node>],
    field: &Field,
    path: &str,
    parents: &[Option<Node>],
) -> Result<ArrayRef> {
    if field.is_nullable() || parents.iter().all(Option::is_some) {
        return column(nodes, field, path);
    }
    if let Some(i) = nodes
        .iter()
        .zip(parents)
        .position(|(n, p)| n.is_none() && p.is_some())
    {
        return Err(err(
            path,
            format!("row {i} has no value (null or missing field) but the column is not null"),
        ));
    }
    let relaxed = field.clone().with_nullable(true);
    column(nodes, &relaxed, path)
}

// ---------------------------------------------------------------------------------------------
// JSON rendering

fn to_json(node: Node) -> Json {
    let Some(n) = node.normalized() else {
        return Json::Null;
    };
    match (n.v, n.s) {
        (Value::Record(fields), Schema::Record(rs)) => {
            let mut map = JsonMap::new();
            for ((name, v), f) in fields.iter().zip(&rs.fields) {
                map.insert(name.clone(), to_json(Node::new(v, &f.schema, n.names)));
            }
            Json::Object(map)
        }
        (Value::Array(items), Schema::Array(a)) => Json::Array(
            items
                .iter()
                .map(|v| to_json(Node::new(v, &a.items, n.names)))
                .collect(),
        ),
        (Value::Map(m), Schema::Map(ms)) => {
            let mut map = JsonMap::new();
            for (k, v) in m {
                map.insert(k.clone(), to_json(Node::new(v, &ms.types, n.names)));
            }
            Json::Object(map)
        }
        (Value::Decimal(_), _) => match decimal_of(&n) {
            Some((v, scale)) => Json::String(decimal_text(v, scale)),
            None => Json::String("<decimal wider than 128 bits>".into()),
        },
        (v, _) => scalar_json(v),
    }
}

fn scalar_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Long(i) => Json::from(*i),
        Value::Float(f) => float_json(f64::from(*f)),
        Value::Double(f) => float_json(*f),
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Bytes(b) | Value::Fixed(_, b) => Json::String(crate::base64(b)),
        Value::Date(d) => Json::String(date_text(i64::from(*d))),
        Value::TimeMillis(t) => Json::String(time_text(i64::from(*t), 1_000)),
        Value::TimeMicros(t) => Json::String(time_text(*t, 1_000_000)),
        Value::TimestampMillis(t) => Json::String(timestamp_text(*t, 1_000, true)),
        Value::TimestampMicros(t) => Json::String(timestamp_text(*t, 1_000_000, true)),
        Value::TimestampNanos(t) => Json::String(timestamp_text(*t, 1_000_000_000, true)),
        Value::LocalTimestampMillis(t) => Json::String(timestamp_text(*t, 1_000, false)),
        Value::LocalTimestampMicros(t) => Json::String(timestamp_text(*t, 1_000_000, false)),
        Value::LocalTimestampNanos(t) => Json::String(timestamp_text(*t, 1_000_000_000, false)),
        Value::Uuid(u) => Json::String(u.to_string()),
        Value::BigDecimal(b) => Json::String(b.to_string()),
        Value::Duration(d) => serde_json::json!({
            "months": u32::from(d.months()),
            "days": u32::from(d.days()),
            "millis": u32::from(d.millis()),
        }),
        Value::Union(_, inner) => scalar_json(inner),
        Value::Array(items) => Json::Array(items.iter().map(scalar_json).collect()),
        Value::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), scalar_json(v))).collect()),
        Value::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), scalar_json(v)))
                .collect(),
        ),
        Value::Decimal(d) => match Vec::<u8>::try_from(d).ok().and_then(|b| i128_from_be(&b)) {
            Some(v) => Json::String(v.to_string()),
            None => Json::Null,
        },
    }
}

fn float_json(f: f64) -> Json {
    serde_json::Number::from_f64(f)
        .map(Json::Number)
        .unwrap_or_else(|| {
            Json::String(if f.is_nan() {
                "NaN".into()
            } else if f > 0.0 {
                "Infinity".into()
            } else {
                "-Infinity".into()
            })
        })
}

/// `-12345` with scale 2 → `-123.45`. A scale over [`MAX_DECIMAL_SCALE`] (refused when a writer
/// schema is read, so only reachable by other callers) is written as `-12345e-1000`, exact
/// and without padding the text to the scale.
pub fn decimal_text(v: i128, scale: u32) -> String {
    let digits = v.unsigned_abs().to_string();
    let sign = if v < 0 { "-" } else { "" };
    if scale as usize > MAX_DECIMAL_SCALE {
        return format!("{sign}{digits}e-{scale}");
    }
    let scale = scale as usize;
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Civil date of a day number since 1970-01-01 (proleptic Gregorian, H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn date_text(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn fraction(sub: i64, per_sec: i64) -> String {
    match per_sec {
        1_000 => format!(".{sub:03}"),
        1_000_000 => format!(".{sub:06}"),
        _ => format!(".{sub:09}"),
    }
}

fn time_text(t: i64, per_sec: i64) -> String {
    let secs = t.div_euclid(per_sec);
    let sub = t.rem_euclid(per_sec);
    format!(
        "{:02}:{:02}:{:02}{}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        fraction(sub, per_sec)
    )
}

/// RFC 3339 text of a timestamp; `utc` adds the `Z`.
pub fn timestamp_text(t: i64, per_sec: i64, utc: bool) -> String {
    let secs = t.div_euclid(per_sec);
    let sub = t.rem_euclid(per_sec);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}{}{}",
        date_text(days),
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        fraction(sub, per_sec),
        if utc { "Z" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        assert_eq!(decimal_text(-12345, 2), "-123.45");
        assert_eq!(decimal_text(5, 3), "0.005");
        assert_eq!(decimal_text(-5, 3), "-0.005");
        assert_eq!(decimal_text(42, 0), "42");
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(date_text(20412), "2025-11-20");
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(
            timestamp_text(1_763_646_360_123_456, 1_000_000, true),
            "2025-11-20T13:46:00.123456Z"
        );
        assert_eq!(timestamp_text(-1, 1_000, false), "1969-12-31T23:59:59.999");
    }

    #[test]
    fn header_errors_are_clear() {
        assert!(
            unframe(&[0, 0, 0])
                .unwrap_err()
                .to_string()
                .contains("5-byte")
        );
        assert!(
            unframe(&[1, 0, 0, 0, 1, 2])
                .unwrap_err()
                .to_string()
                .contains("magic byte")
        );
        assert_eq!(unframe(&[0, 0, 0, 1, 2, 9]).unwrap(), (258, &[9u8][..]));
    }

    #[test]
    fn i128_from_wide_bytes() {
        assert_eq!(i128_from_be(&[0xFF, 0xFE]), Some(-2));
        assert_eq!(i128_from_be(&[0x01, 0x00]), Some(256));
        let mut wide = vec![0xFF; 20];
        wide[19] = 0xFE;
        assert_eq!(i128_from_be(&wide), Some(-2));
        assert_eq!(i128_from_be(&[0x7F; 20]), None);
        // +2^127 in 17 bytes: out of range, not i128::MIN.
        let mut plus = vec![0x00, 0x80];
        plus.extend([0u8; 15]);
        assert_eq!(i128_from_be(&plus), None);
        // -2^127 - 1 in 17 bytes: out of range, not i128::MAX.
        let mut minus = vec![0xFF, 0x7F];
        minus.extend([0xFFu8; 15]);
        assert_eq!(i128_from_be(&minus), None);
        let mut min = vec![0xFF, 0x80];
        min.extend([0u8; 15]);
        assert_eq!(i128_from_be(&min), Some(i128::MIN));
    }

    #[test]
    fn a_writer_schema_with_an_unbounded_decimal_scale_is_refused() {
        let text = r#"{"type":"bytes","logicalType":"decimal","precision":2000,"scale":1000}"#;
        let err = WriterSchema::parse(7, text).expect_err("refused");
        assert!(err.to_string().contains("scale 1000"), "{err}");
        assert_eq!(decimal_text(-5, 1000), "-5e-1000");
    }

    #[test]
    fn hostile_datums_are_errors_not_aborts() {
        let w = WriterSchema::parse(1, r#"{"type":"map","values":"null"}"#).expect("schema");
        // A map block of 400M entries (under apache-avro's own 512M cap): it would reserve ~20 GB.
        let mut z: u64 = 400_000_000u64 << 1;
        let mut bytes = Vec::new();
        while z >= 0x80 {
            bytes.push((z as u8) | 0x80);
            z >>= 7;
        }
        bytes.push(z as u8);
        let err = w.decode(&bytes).expect_err("refused");
        assert!(err.to_string().contains("value limit"), "{err}");
        let w = WriterSchema::parse(2, r#"{"type":"fixed","name":"big","size":100000000}"#)
            .expect("schema");
        let err = w.decode(&[1, 2, 3]).expect_err("refused");
        assert!(err.to_string().contains("past the end"), "{err}");
    }
}
