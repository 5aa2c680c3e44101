//! RecordBatch rows → Confluent-framed Avro messages (one `Vec<u8>` per row).
//!
//! Each message is `0x00`, the schema id as a big-endian `u32`, then the Avro binary datum of the
//! row. Values are built column by column with their exact Avro form (unions with their branch
//! index, logical types), then `resolve`d against the schema before `to_avro_datum` — without the
//! resolve step apache-avro drops logical types and union branches. A value that does not fit
//! (a `UInt64` above `i64::MAX`, a null in a non-nullable column) fails the batch with the column
//! and row; nothing is written half-encoded.

use apache_avro::Decimal;
use apache_avro::types::Value;
use arrow::array::{Array, ArrayRef, AsArray, GenericListArray, OffsetSizeTrait, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};

use super::schema::{AvroSchema, arrow_to_avro};
use crate::{ConnectorError, Result};

/// First byte of every Confluent-framed message.
pub const MAGIC_BYTE: u8 = 0;

/// Prepends the Confluent header (`0x00` + big-endian schema id) to an Avro datum.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Encodes batches of one Arrow schema as Confluent-framed Avro messages.
#[derive(Debug, Clone)]
pub struct AvroEncoder {
    arrow: SchemaRef,
    avro: AvroSchema,
    schema_id: u32,
}

impl AvroEncoder {
    /// An encoder for `arrow` batches whose Avro schema (from [`arrow_to_avro`]) is registered
    /// under `schema_id`.
    pub fn new(arrow: SchemaRef, avro: AvroSchema, schema_id: u32) -> Self {
        AvroEncoder {
            arrow,
            avro,
            schema_id,
        }
    }

    /// Derives the Avro schema of `arrow` (see [`arrow_to_avro`]) and builds the encoder.
    pub fn for_arrow(
        arrow: SchemaRef,
        record_name: &str,
        namespace: Option<&str>,
        schema_id: u32,
    ) -> Result<Self> {
        let avro = arrow_to_avro(&arrow, record_name, namespace)?;
        Ok(Self::new(arrow, avro, schema_id))
    }

    /// The Avro schema written.
    pub fn avro_schema(&self) -> &AvroSchema {
        &self.avro
    }

    /// The registry id placed in every message header.
    pub fn schema_id(&self) -> u32 {
        self.schema_id
    }

    /// One framed message per row of `batch`.
    pub fn encode_batch(&self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        if batch.schema().fields() != self.arrow.fields() {
            return Err(ConnectorError::AvroEncode {
                column: "<batch>".into(),
                row: 0,
                reason: format!(
                    "the batch's schema differs from the encoder's ({} vs {} columns, or other names/types)",
                    batch.num_columns(),
                    self.arrow.fields().len()
                ),
            });
        }
        if let Some(messages) = self.encode_direct(batch) {
            return Ok(messages);
        }
        let rows = record_values(batch)?;
        rows.into_iter()
            .enumerate()
            .map(|(row, value)| {
                let resolved =
                    value
                        .resolve(&self.avro.schema)
                        .map_err(|e| ConnectorError::AvroEncode {
                            column: "<row>".into(),
                            row,
                            reason: format!("value does not match the Avro schema: {e}"),
                        })?;
                let datum =
                    apache_avro::to_avro_datum(&self.avro.schema, resolved).map_err(|e| {
                        ConnectorError::AvroEncode {
                            column: "<row>".into(),
                            row,
                            reason: e.to_string(),
                        }
                    })?;
                Ok(frame(self.schema_id, &datum))
            })
            .collect()
    }
}

impl AvroEncoder {
    /// The hot path: Avro binary straight from the columns (see `direct.rs`); `None` sends the
    /// batch down the `Value` path, which handles every type and reports precise errors.
    fn encode_direct(&self, batch: &RecordBatch) -> Option<Vec<Vec<u8>>> {
        let schema = batch.schema();
        let mut messages = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let mut out = Vec::with_capacity(128);
            out.push(MAGIC_BYTE);
            out.extend_from_slice(&self.schema_id.to_be_bytes());
            for (f, column) in schema.fields().iter().zip(batch.columns()) {
                super::direct::field(&mut out, column.as_ref(), f, row)?;
            }
            messages.push(out);
        }
        Some(messages)
    }
}

/// The Avro record value of every row of `batch` (unresolved; see [`AvroEncoder`]).
pub fn record_values(batch: &RecordBatch) -> Result<Vec<Value>> {
    let schema = batch.schema();
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        columns.push(field_values(array, field, field.name())?);
    }
    Ok(zip_records(
        batch.num_rows(),
        schema.fields().iter().map(|f| f.name().clone()).collect(),
        columns,
    ))
}

fn zip_records(rows: usize, names: Vec<String>, columns: Vec<Vec<Value>>) -> Vec<Value> {
    let mut iters: Vec<_> = columns.into_iter().map(|c| c.into_iter()).collect();
    (0..rows)
        .map(|_| {
            Value::Record(
                names
                    .iter()
                    .zip(iters.iter_mut())
                    .map(|(n, it)| (n.clone(), it.next().unwrap_or(Value::Null)))
                    .collect(),
            )
        })
        .collect()
}

/// Values of one field: wrapped in the `["null", T]` union when the field is nullable.
fn field_values(array: &ArrayRef, field: &Field, path: &str) -> Result<Vec<Value>> {
    let values = type_values(array, field.data_type(), path)?;
    if field.is_nullable() {
        Ok(values
            .into_iter()
            .map(|v| match v {
                Value::Null => Value::Union(0, Box::new(Value::Null)),
                v => Value::Union(1, Box::new(v)),
            })
            .collect())
    } else {
        if let Some(row) = (0..array.len()).find(|&i| array.is_null(i)) {
            return Err(ConnectorError::AvroEncode {
                column: path.to_string(),
                row,
                reason: "null in a column declared not null".into(),
            });
        }
        Ok(values)
    }
}

fn prim<T, F>(array: &ArrayRef, f: F) -> Vec<Value>
where
    T: arrow::datatypes::ArrowPrimitiveType,
    F: Fn(T::Native) -> Value,
{
    array
        .as_primitive::<T>()
        .iter()
        .map(|v| v.map(&f).unwrap_or(Value::Null))
        .collect()
}

/// Bytes a two's-complement decimal of `precision` digits needs (what readers expect).
pub(crate) fn decimal_len(precision: u8) -> usize {
    (1..=16)
        .find(|&n| {
            let max_digits = ((2f64).powi(8 * n as i32 - 1) - 1.0).log10().floor();
            max_digits >= precision as f64
        })
        .unwrap_or(16)
}

fn decimal_value(v: i128, len: usize) -> Value {
    let bytes = v.to_be_bytes();
    Value::Decimal(Decimal::from(bytes[16 - len..].to_vec()))
}

/// Values of an array as Avro values; a null slot is `Value::Null`.
fn type_values(array: &ArrayRef, dt: &DataType, path: &str) -> Result<Vec<Value>> {
    Ok(match dt {
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| v.map(Value::Boolean).unwrap_or(Value::Null))
            .collect(),
        DataType::Int8 => prim::<Int8Type, _>(array, |v| Value::Int(v.into())),
        DataType::Int16 => prim::<Int16Type, _>(array, |v| Value::Int(v.into())),
        DataType::Int32 => prim::<Int32Type, _>(array, Value::Int),
        DataType::Int64 => prim::<Int64Type, _>(array, Value::Long),
        DataType::UInt8 => prim::<UInt8Type, _>(array, |v| Value::Int(v.into())),
        DataType::UInt16 => prim::<UInt16Type, _>(array, |v| Value::Int(v.into())),
        DataType::UInt32 => prim::<UInt32Type, _>(array, |v| Value::Long(v.into())),
        DataType::UInt64 => {
            let a = array.as_primitive::<UInt64Type>();
            let mut out = Vec::with_capacity(a.len());
            for (row, v) in a.iter().enumerate() {
                out.push(match v {
                    None => Value::Null,
                    Some(v) => {
                        Value::Long(i64::try_from(v).map_err(|_| ConnectorError::AvroEncode {
                            column: path.to_string(),
                            row,
                            reason: format!("{v} does not fit an Avro long"),
                        })?)
                    }
                });
            }
            out
        }
        DataType::Float32 => prim::<Float32Type, _>(array, Value::Float),
        DataType::Float64 => prim::<Float64Type, _>(array, Value::Double),
        DataType::Utf8 => strings(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => strings(array.as_string::<i64>().iter()),
        DataType::Utf8View => strings(array.as_string_view().iter()),
        DataType::Binary => binaries(array.as_binary::<i32>().iter()),
        DataType::LargeBinary => binaries(array.as_binary::<i64>().iter()),
        DataType::BinaryView => binaries(array.as_binary_view().iter()),
        DataType::Decimal128(p, _) => {
            let len = decimal_len(*p);
            prim::<Decimal128Type, _>(array, |v| decimal_value(v, len))
        }
        DataType::Date32 => prim::<Date32Type, _>(array, Value::Date),
        DataType::Timestamp(unit, tz) => {
            let local = tz.is_none();
            match unit {
                TimeUnit::Second => prim::<TimestampSecondType, _>(array, |v| {
                    let ms = v.saturating_mul(1000);
                    if local {
                        Value::LocalTimestampMillis(ms)
                    } else {
                        Value::TimestampMillis(ms)
                    }
                }),
                TimeUnit::Millisecond => prim::<TimestampMillisecondType, _>(array, |v| {
                    if local {
                        Value::LocalTimestampMillis(v)
                    } else {
                        Value::TimestampMillis(v)
                    }
                }),
                TimeUnit::Microsecond => prim::<TimestampMicrosecondType, _>(array, |v| {
                    if local {
                        Value::LocalTimestampMicros(v)
                    } else {
                        Value::TimestampMicros(v)
                    }
                }),
                TimeUnit::Nanosecond => prim::<TimestampNanosecondType, _>(array, |v| {
                    if local {
                        Value::LocalTimestampNanos(v)
                    } else {
                        Value::TimestampNanos(v)
                    }
                }),
            }
        }
        DataType::List(item) => list_values(array.as_list::<i32>(), item, path)?,
        DataType::LargeList(item) => list_values(array.as_list::<i64>(), item, path)?,
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut columns = Vec::with_capacity(fields.len());
            for (f, child) in fields.iter().zip(s.columns()) {
                let child_path = format!("{path}.{}", f.name());
                // Children of null struct slots may hold anything: only valid slots are checked.
                columns.push(field_values_masked(child, f, &child_path, s)?);
            }
            let records = zip_records(
                s.len(),
                fields.iter().map(|f| f.name().clone()).collect(),
                columns,
            );
            records
                .into_iter()
                .enumerate()
                .map(|(i, r)| if s.is_null(i) { Value::Null } else { r })
                .collect()
        }
        DataType::Map(entries, _) => {
            let m = array.as_map();
            let keys = m.keys();
            let key_strings: Vec<Option<String>> = match keys.data_type() {
                DataType::Utf8 => keys
                    .as_string::<i32>()
                    .iter()
                    .map(|k| k.map(str::to_string))
                    .collect(),
                DataType::LargeUtf8 => keys
                    .as_string::<i64>()
                    .iter()
                    .map(|k| k.map(str::to_string))
                    .collect(),
                other => {
                    return Err(ConnectorError::AvroEncode {
                        column: path.to_string(),
                        row: 0,
                        reason: format!("map keys of type {other}: Avro maps need string keys"),
                    });
                }
            };
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(ConnectorError::AvroEncode {
                    column: path.to_string(),
                    row: 0,
                    reason: "map entries are not a struct".into(),
                });
            };
            let values = field_values(m.values(), &kv[1], &format!("{path}{{}}"))?;
            let offsets = m.value_offsets();
            let mut out = Vec::with_capacity(m.len());
            for i in 0..m.len() {
                if m.is_null(i) {
                    out.push(Value::Null);
                    continue;
                }
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                let mut entries = std::collections::HashMap::with_capacity(end - start);
                for j in start..end {
                    let key = key_strings[j]
                        .clone()
                        .ok_or_else(|| ConnectorError::AvroEncode {
                            column: path.to_string(),
                            row: i,
                            reason: "null map key".into(),
                        })?;
                    entries.insert(key, values[j].clone());
                }
                out.push(Value::Map(entries));
            }
            out
        }
        other => {
            return Err(ConnectorError::AvroEncode {
                column: path.to_string(),
                row: 0,
                reason: format!("Arrow type {other} has no Avro mapping"),
            });
        }
    })
}

/// Like [`field_values`] but a null in a non-nullable child is only an error where the parent
/// struct slot is valid.
fn field_values_masked(
    array: &ArrayRef,
    field: &Field,
    path: &str,
    parent: &arrow::array::StructArray,
) -> Result<Vec<Value>> {
    if field.is_nullable() {
        return field_values(array, field, path);
    }
    if let Some(row) = (0..array.len()).find(|&i| array.is_null(i) && parent.is_valid(i)) {
        return Err(ConnectorError::AvroEncode {
            column: path.to_string(),
            row,
            reason: "null in a column declared not null".into(),
        });
    }
    type_values(array, field.data_type(), path)
}

fn list_values<O: OffsetSizeTrait>(
    list: &GenericListArray<O>,
    item: &Field,
    path: &str,
) -> Result<Vec<Value>> {
    let offsets = list.value_offsets();
    let first = offsets.first().map(|o| o.as_usize()).unwrap_or(0);
    let last = offsets.last().map(|o| o.as_usize()).unwrap_or(0);
    let values = list.values().slice(first, last - first);
    let item_path = format!("{path}[]");
    let mut items = field_values(&values, item, &item_path)?.into_iter();
    let mut out = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        let n = offsets[i + 1].as_usize() - offsets[i].as_usize();
        let chunk: Vec<Value> = items.by_ref().take(n).collect();
        out.push(if list.is_null(i) {
            Value::Null
        } else {
            Value::Array(chunk)
        });
    }
    Ok(out)
}

fn strings<'a>(it: impl Iterator<Item = Option<&'a str>>) -> Vec<Value> {
    it.map(|v| {
        v.map(|s| Value::String(s.to_string()))
            .unwrap_or(Value::Null)
    })
    .collect()
}

fn binaries<'a>(it: impl Iterator<Item = Option<&'a [u8]>>) -> Vec<Value> {
    it.map(|v| v.map(|b| Value::Bytes(b.to_vec())).unwrap_or(Value::Null))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_lengths_match_the_avro_spec() {
        // max precision for n bytes: floor(log10(2^(8n-1) - 1))
        assert_eq!(decimal_len(2), 1);
        assert_eq!(decimal_len(3), 2);
        assert_eq!(decimal_len(9), 4);
        assert_eq!(decimal_len(10), 5);
        assert_eq!(decimal_len(18), 8);
        assert_eq!(decimal_len(38), 16);
    }

    #[test]
    fn the_direct_writer_decodes_to_the_same_values_as_the_value_path() {
        use std::sync::Arc;

        use arrow::array::{
            ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
            Int32Array, Int64Array, ListArray, StringArray, StructArray, TimestampMicrosecondArray,
            UInt64Array,
        };
        use arrow::datatypes::{Field, Fields, Schema};

        let inner = Fields::from(vec![
            Field::new("lat", DataType::Float64, true),
            Field::new("tag", DataType::Utf8, false),
        ]);
        let location = StructArray::new(
            inner.clone(),
            vec![
                Arc::new(Float64Array::from(vec![Some(-23.5), None, Some(0.0)])) as ArrayRef,
                Arc::new(StringArray::from(vec!["sp", "", "ãé😀"])),
            ],
            Some(vec![true, true, false].into()),
        );
        let tags = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None, Some(-3)]),
            Some(vec![]),
            None,
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![i64::MIN, 0, i64::MAX])),
            Arc::new(Int32Array::from(vec![Some(-1), None, Some(64)])),
            Arc::new(UInt64Array::from(vec![0, 1 << 40, i64::MAX as u64])),
            Arc::new(Float32Array::from(vec![1.5, f32::NAN, -0.0])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("ü")])),
            Arc::new(
                Decimal128Array::from(vec![Some(-12_345), Some(0), Some(99_999_999)])
                    .with_precision_and_scale(12, 2)
                    .expect("decimal"),
            ),
            Arc::new(Date32Array::from(vec![0, -1, 20_000])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_763_646_312_123_456), None, Some(-1)])
                    .with_timezone("UTC"),
            ),
            Arc::new(location),
            Arc::new(tags),
        ];
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let nullable = c.null_count() > 0 || matches!(i, 1 | 4 | 5 | 8 | 10);
                    Field::new(format!("c{i}"), c.data_type().clone(), nullable)
                })
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
        let encoder = AvroEncoder::for_arrow(schema, "row", Some("strata"), 7).expect("encoder");
        let direct = encoder
            .encode_direct(&batch)
            .expect("the direct path takes these types");
        let by_values = record_values(&batch).expect("values");
        let avro = &encoder.avro_schema().schema;
        for (message, value) in direct.iter().zip(by_values) {
            assert_eq!(&message[..5], &[0, 0, 0, 0, 7]);
            let slow = apache_avro::to_avro_datum(avro, value.resolve(avro).expect("resolve"))
                .expect("datum");
            let a = apache_avro::from_avro_datum(avro, &mut &message[5..], None).expect("direct");
            let b = apache_avro::from_avro_datum(avro, &mut slow.as_slice(), None).expect("slow");
            // NaN != NaN: compare the debug forms.
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
    }

    #[test]
    fn frame_has_magic_byte_and_big_endian_id() {
        assert_eq!(frame(258, &[7]), vec![0, 0, 0, 1, 2, 7]);
    }
}
