//! `parse_json`: raw JSON records → typed columns of a declared schema.
//!
//! One bad record never costs the batch. The path is vectorised in three passes:
//! 1. validate each record as one JSON object (serde_json, no allocation) — invalid ones are
//!    rejected with the parser's message;
//! 2. decode the valid ones in one go with arrow-json into a *lenient* schema (every scalar leaf
//!    a string), so wrong-typed values cannot fail the decode; only a structural mismatch (an
//!    object where a number belongs) can, and then the batch is bisected to isolate it;
//! 3. cast each column to its declared type with [`crate::safe_cast`], and reject rows whose
//!    null mask grew, naming the field and the value.
//!
//! Decoding is the largest cost of a JSON pipeline, so a large batch is cut into consecutive
//! chunks that go through the three passes on their own threads (scoped: the step stays a pure
//! function of its input, and no thread outlives a call). Rows are put back in input order and
//! the pipeline orders quarantine by row, so the output is the same for any chunking.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{is_null, or, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;

use crate::error::{CoreError, Result};
use crate::safe_cast::{lenient_type, safe_cast};
use crate::spec::{EpochUnit, ParseJsonSpec};
use crate::step::{ROW_ID, Rejected, Step, StepOutput, render_value, with_row_id};
use crate::types::{schema_from_map, type_name};

/// The built `parse_json` step.
pub struct ParseJson {
    name: String,
    raw_index: usize,
    target: SchemaRef,
    lenient: SchemaRef,
    epoch: EpochUnit,
    output: SchemaRef,
    /// One decode buffer per thread, reused across batches.
    buffers: Vec<Vec<u8>>,
    /// Threads a large batch is decoded on.
    threads: usize,
}

/// Records per chunk below which a batch is not split across threads (a thread per smaller
/// chunk costs more than it saves).
const MIN_CHUNK_ROWS: usize = 2048;

/// The threads a large batch is decoded on: the machine's cores, at most 4.
fn decode_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// What the three passes made of one chunk of a batch: typed parts and rejected rows (by row id).
type Parsed = (Vec<RecordBatch>, Vec<(u32, String)>);

impl ParseJson {
    /// Builds the step over `input` (which must hold the raw column).
    pub fn build(spec: &ParseJsonSpec, name: &str, loc: &str, input: &SchemaRef) -> Result<Self> {
        let column = spec.column.as_deref().unwrap_or("_raw");
        let raw_index = input.index_of(column).map_err(|_| {
            CoreError::spec(loc, "column", format!("input has no column `{column}`"))
        })?;
        match input.field(raw_index).data_type() {
            DataType::Binary
            | DataType::LargeBinary
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::BinaryView
            | DataType::Utf8View => {}
            other => {
                return Err(CoreError::spec(
                    loc,
                    "column",
                    format!(
                        "`{column}` is {}, expected raw bytes or a string",
                        type_name(other)
                    ),
                ));
            }
        }
        if spec.schema.is_empty() {
            return Err(CoreError::spec(loc, "schema", "declares no fields"));
        }
        let target = schema_from_map(&spec.schema)
            .map_err(|(field, e)| CoreError::spec(loc, format!("schema.{field}"), e))?;
        for f in target.fields() {
            if f.name().starts_with('_') {
                return Err(CoreError::spec(
                    loc,
                    format!("schema.{}", f.name()),
                    "names starting with `_` are reserved for lineage columns",
                ));
            }
        }
        let lenient = Schema::new(
            target
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), lenient_type(f.data_type()), true))
                .collect::<Vec<_>>(),
        );
        let output = with_row_id(target.fields().iter().cloned().collect());
        Ok(ParseJson {
            name: name.to_string(),
            raw_index,
            target: Arc::new(target),
            lenient: Arc::new(lenient),
            epoch: spec.epoch_unit,
            output,
            buffers: Vec::new(),
            threads: decode_threads(),
        })
    }

    /// Sets the threads a large batch is decoded on (1: the calling thread only).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The three passes over the rows `range` of a batch.
    fn parse_rows(
        &self,
        raw: &Raw<'_>,
        ids: &UInt32Array,
        range: std::ops::Range<usize>,
        buffer: &mut Vec<u8>,
    ) -> Result<Parsed> {
        let mut bad: Vec<(u32, String)> = Vec::new();
        let mut good: Vec<u32> = Vec::with_capacity(range.len());
        for row in range {
            if raw.0.is_null(row) {
                bad.push((row as u32, "record is null".into()));
                continue;
            }
            match validate_object(raw.bytes(row)) {
                Ok(()) => good.push(row as u32),
                Err(e) => bad.push((row as u32, e)),
            }
        }
        let decoded = self.decode(raw, &good, &mut bad, buffer)?;
        // `bad` holds positions in this batch; map them to row ids.
        let mut rejected: Vec<(u32, String)> = bad
            .into_iter()
            .map(|(pos, r)| (ids.value(pos as usize), r))
            .collect();
        let mut parts = Vec::with_capacity(decoded.len());
        for (lenient, positions) in decoded {
            let part_ids = take(ids, &UInt32Array::from(positions), None)?;
            let part_ids = part_ids
                .as_primitive::<arrow::datatypes::UInt32Type>()
                .clone();
            parts.push(self.convert(lenient, part_ids, &mut rejected)?);
        }
        Ok((parts, rejected))
    }

    /// Decodes the records at `rows` (all valid JSON objects). A structural mismatch fails the
    /// arrow-json decode as a whole, so the rows are bisected until the culprits are alone.
    fn decode(
        &self,
        raw: &dyn RawColumn,
        rows: &[u32],
        bad: &mut Vec<(u32, String)>,
        buffer: &mut Vec<u8>,
    ) -> Result<Vec<(RecordBatch, Vec<u32>)>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        match self.try_decode(raw, rows, buffer) {
            Ok(batch) => Ok(vec![(batch, rows.to_vec())]),
            Err(e) if rows.len() == 1 => {
                bad.push((rows[0], format!("does not fit the declared schema: {e}")));
                Ok(Vec::new())
            }
            Err(_) => {
                let (left, right) = rows.split_at(rows.len() / 2);
                let mut out = self.decode(raw, left, bad, buffer)?;
                out.extend(self.decode(raw, right, bad, buffer)?);
                Ok(out)
            }
        }
    }

    fn try_decode(
        &self,
        raw: &dyn RawColumn,
        rows: &[u32],
        buffer: &mut Vec<u8>,
    ) -> std::result::Result<RecordBatch, String> {
        buffer.clear();
        for &r in rows {
            buffer.extend_from_slice(raw.bytes(r as usize));
            buffer.push(b'\n');
        }
        let mut decoder = ReaderBuilder::new(self.lenient.clone())
            .with_batch_size(rows.len())
            .with_coerce_primitive(true)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        let consumed = decoder.decode(buffer).map_err(|e| e.to_string())?;
        if consumed != buffer.len() || decoder.len() != rows.len() {
            return Err(format!(
                "decoded {} of {} records",
                decoder.len(),
                rows.len()
            ));
        }
        match decoder.flush().map_err(|e| e.to_string())? {
            Some(b) => Ok(b),
            None => Err("decoder returned no rows".into()),
        }
    }

    /// Lenient batch → typed batch; rows with a failed conversion or a missing required field are
    /// rejected with a reason naming the field.
    fn convert(
        &self,
        lenient: RecordBatch,
        row_ids: UInt32Array,
        rejected: &mut Vec<(u32, String)>,
    ) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.target.fields().len() + 1);
        let mut failures: Vec<(usize, BooleanArray, bool)> = Vec::new();
        for (i, field) in self.target.fields().iter().enumerate() {
            let source = lenient.column(i);
            let casted = safe_cast(source, field.data_type(), self.epoch)?;
            if let Some(f) = casted.failed {
                failures.push((i, f, false));
            }
            if !field.is_nullable() && casted.array.null_count() > 0 {
                failures.push((i, is_null(&casted.array)?, true));
            }
            columns.push(casted.array);
        }
        columns.push(Arc::new(row_ids));
        let batch = RecordBatch::try_new(
            with_row_id(
                self.target
                    .fields()
                    .iter()
                    .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
                    .collect(),
            ),
            columns,
        )?;
        if failures.is_empty() {
            return Ok(RecordBatch::try_new(
                self.output.clone(),
                batch.columns().to_vec(),
            )?);
        }
        let mut any = failures[0].1.clone();
        for (_, f, _) in &failures[1..] {
            any = or(&any, f)?;
        }
        let ids = batch
            .column(batch.num_columns() - 1)
            .as_primitive::<arrow::datatypes::UInt32Type>();
        for row in 0..any.len() {
            if !any.value(row) {
                continue;
            }
            let reason = failures
                .iter()
                .find(|(_, f, _)| f.value(row))
                .map(|(col, _, missing)| {
                    let field = self.target.field(*col);
                    if *missing {
                        format!("required field `{}` is missing or null", field.name())
                    } else {
                        format!(
                            "field `{}`: {} is not a valid {}",
                            field.name(),
                            render_value(lenient.column(*col).as_ref(), row),
                            type_name(field.data_type())
                        )
                    }
                })
                .unwrap_or_default();
            rejected.push((ids.value(row), reason));
        }
        let keep = arrow::compute::not(&any)?;
        let kept = arrow::compute::filter_record_batch(&batch, &keep)?;
        Ok(RecordBatch::try_new(
            self.output.clone(),
            kept.columns().to_vec(),
        )?)
    }
}

/// Uniform byte access over the raw column types we accept.
trait RawColumn: Sync {
    fn bytes(&self, row: usize) -> &[u8];
}

struct Raw<'a>(&'a dyn Array);

impl RawColumn for Raw<'_> {
    fn bytes(&self, row: usize) -> &[u8] {
        match self.0.data_type() {
            DataType::Binary => self.0.as_binary::<i32>().value(row),
            DataType::LargeBinary => self.0.as_binary::<i64>().value(row),
            DataType::Utf8 => self.0.as_string::<i32>().value(row).as_bytes(),
            DataType::LargeUtf8 => self.0.as_string::<i64>().value(row).as_bytes(),
            DataType::BinaryView => self.0.as_binary_view().value(row),
            DataType::Utf8View => self.0.as_string_view().value(row).as_bytes(),
            _ => &[],
        }
    }
}

/// Checks that `bytes` is exactly one JSON object; returns why not.
pub(crate) fn validate_object(bytes: &[u8]) -> std::result::Result<(), String> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err("empty record".into()),
        Some(b'{') => {}
        Some(_) => {
            // Still say whether it is JSON at all: "not an object" vs "not JSON".
            return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => Err("JSON value is not an object".into()),
                Err(e) => Err(format!("not valid JSON: {e}")),
            };
        }
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map(|_| ())
        .map_err(|e| format!("not valid JSON: {e}"))
}

impl Step for ParseJson {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        let raw_array = batch.column(self.raw_index).clone();
        let raw = Raw(raw_array.as_ref());
        let ids = crate::step::row_ids(&batch)?.clone();
        let n = batch.num_rows();
        let threads = self.threads.min(n / MIN_CHUNK_ROWS).max(1);
        let mut buffers = std::mem::take(&mut self.buffers);
        buffers.resize_with(threads, Vec::new);
        let this = &*self;
        let chunks: Vec<Result<Parsed>> = if threads == 1 {
            vec![this.parse_rows(&raw, &ids, 0..n, &mut buffers[0])]
        } else {
            let per = n.div_ceil(threads);
            std::thread::scope(|scope| {
                let (first, rest) = buffers.split_at_mut(1);
                let (raw, ids) = (&raw, &ids);
                let spawned: Vec<_> = rest
                    .iter_mut()
                    .enumerate()
                    .map(|(i, buffer)| {
                        let range = (i + 1) * per..((i + 2) * per).min(n);
                        scope.spawn(move || this.parse_rows(raw, ids, range, buffer))
                    })
                    .collect();
                let mut out = vec![this.parse_rows(raw, ids, 0..per.min(n), &mut first[0])];
                for handle in spawned {
                    out.push(handle.join().unwrap_or_else(|_| {
                        Err(CoreError::Internal("a parse_json thread panicked".into()))
                    }));
                }
                out
            })
        };
        self.buffers = buffers;
        let mut parts = Vec::new();
        let mut rejected: Vec<(u32, String)> = Vec::new();
        for chunk in chunks {
            let (p, r) = chunk?;
            parts.extend(p);
            rejected.extend(r);
        }
        let out = match parts.len() {
            0 => RecordBatch::new_empty(self.output.clone()),
            1 => parts
                .pop()
                .unwrap_or_else(|| RecordBatch::new_empty(self.output.clone())),
            _ => arrow::compute::concat_batches(&self.output, &parts)?,
        };
        // Bisection may reorder nothing, but keep row order explicit for the stream ≡ batch contract.
        let out = sort_by_row_id(out)?;
        let rejected = if rejected.is_empty() {
            None
        } else {
            let (ids, reasons): (Vec<u32>, Vec<String>) = rejected.into_iter().unzip();
            Some(Rejected {
                row_ids: UInt32Array::from(ids),
                reasons: StringArray::from(reasons),
            })
        };
        Ok(StepOutput {
            batch: out,
            rejected,
            dropped: 0,
            rules: Vec::new(),
        })
    }
}

fn sort_by_row_id(batch: RecordBatch) -> Result<RecordBatch> {
    let ids = batch
        .column_by_name(ROW_ID)
        .ok_or_else(|| CoreError::Internal("parse_json output lost row ids".into()))?;
    let sorted = ids
        .as_primitive::<arrow::datatypes::UInt32Type>()
        .values()
        .windows(2)
        .all(|w| w[0] <= w[1]);
    if sorted {
        return Ok(batch);
    }
    let idx = arrow::compute::sort_to_indices(ids, None, None)?;
    Ok(arrow::compute::take_record_batch(&batch, &idx)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::EpochUnit;
    use arrow::array::BinaryArray;
    use indexmap::IndexMap;

    fn step() -> ParseJson {
        let mut schema = IndexMap::new();
        schema.insert("id".to_string(), "int64".to_string());
        schema.insert("ts".to_string(), "timestamp".to_string());
        schema.insert("tags".to_string(), "list<string>".to_string());
        let spec = ParseJsonSpec {
            name: None,
            column: None,
            schema,
            epoch_unit: EpochUnit::default(),
        };
        let input = Arc::new(Schema::new(vec![
            Field::new("_raw", DataType::Binary, true),
            Field::new(ROW_ID, DataType::UInt32, false),
        ]));
        ParseJson::build(&spec, "parse", "steps[0]", &input).unwrap()
    }

    /// Every kind of record: good, not JSON, not an object, a value that does not cast, a
    /// structure where a scalar belongs (bisected), null.
    fn batch(n: usize) -> RecordBatch {
        let records: Vec<Option<Vec<u8>>> = (0..n)
            .map(|i| match i % 11 {
                3 => Some(b"{not json".to_vec()),
                5 => Some(b"[1, 2]".to_vec()),
                7 => {
                    Some(format!(r#"{{"id": "x{i}", "ts": "2025-01-01T00:00:00Z"}}"#).into_bytes())
                }
                8 => Some(format!(r#"{{"id": {i}, "tags": {{"a": 1}}}}"#).into_bytes()),
                9 => None,
                _ => Some(
                    format!(
                        r#"{{"id": {i}, "ts": "2025-01-01T00:00:{:02}Z", "tags": ["t{i}"]}}"#,
                        i % 60
                    )
                    .into_bytes(),
                ),
            })
            .collect();
        let raw = BinaryArray::from_iter(records.iter().map(|r| r.as_deref()));
        let ids = UInt32Array::from_iter_values(0..n as u32);
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("_raw", DataType::Binary, true),
                Field::new(ROW_ID, DataType::UInt32, false),
            ])),
            vec![Arc::new(raw), Arc::new(ids)],
        )
        .unwrap()
    }

    fn sorted_rejections(out: &StepOutput) -> Vec<(u32, String)> {
        let mut r: Vec<(u32, String)> = out
            .rejected
            .as_ref()
            .map(|r| {
                r.row_ids
                    .iter()
                    .zip(r.reasons.iter())
                    .map(|(i, s)| (i.unwrap_or(0), s.unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        r.sort();
        r
    }

    #[test]
    fn a_batch_decoded_on_several_threads_equals_one_thread() {
        let input = batch(10_000);
        let one = step().with_threads(1).process(input.clone()).unwrap();
        for threads in [2, 3, 4] {
            let many = step().with_threads(threads).process(input.clone()).unwrap();
            assert_eq!(many.batch, one.batch, "{threads} threads");
            assert_eq!(
                sorted_rejections(&many),
                sorted_rejections(&one),
                "{threads} threads"
            );
        }
        let rejected = sorted_rejections(&one);
        assert!(rejected.len() > 4_000, "{}", rejected.len());
        assert_eq!(one.batch.num_rows() + rejected.len(), 10_000);
    }
}
