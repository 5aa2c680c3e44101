//! `window_aggregate`: tumbling and hopping event-time windows (Druid's ingestion-time rollup,
//! Flink's windows) with a watermark and an allowed lateness.
//!
//! - **Watermark** = the highest event time seen. A window `[start, end)` is final, and emitted,
//!   once `watermark >= end + allowed_lateness`.
//! - **Rows are taken in input order**: a row is checked against the watermark left by the rows
//!   before it, then moves it. So the output depends on the sequence of rows only, never on how
//!   it was cut into batches: streaming (many `process` calls) and batch (one call, then
//!   `finish`) give the same windows in the same order (by window end, then start, then group).
//! - **Late rows**: a row whose every window is already final is quarantined with its reason;
//!   a row of hopping windows of which only some are final counts in the open ones.
//! - **State** is the open (window, group) accumulators and the watermark, checkpointed as
//!   versioned JSON; memory is bounded by `max_open_windows`.
//! - Aggregates: `count`, `sum`, `min`, `max`, `avg` (Float64 results for numeric columns) and
//!   `approx_count_distinct` (HyperLogLog, 2^10 registers, about 3% standard error).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::spec::{WindowAggregateSpec, parse_duration_micros};
use crate::step::{ROW_ID, Rejected, Step, StepOutput, row_ids};

const FORMAT: &str = "strata.window_aggregate.v1";
const HLL_BITS: u32 = 10;
const HLL_REGISTERS: usize = 1 << HLL_BITS;
const HLL_SEED: u64 = 0x5354_5241_5441_4c4c;
/// Default bound on open (window, group) pairs.
pub const DEFAULT_MAX_OPEN_WINDOWS: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    ApproxCountDistinct,
}

#[derive(Debug)]
struct Aggregate {
    output: String,
    func: Func,
    /// Input column index (None for `count`).
    column: Option<usize>,
    /// Row encoding of the column, hashed for `approx_count_distinct`.
    distinct: Option<RowConverter>,
}

/// One aggregate's running value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Acc {
    Count(i64),
    Sum(#[serde(with = "opt_bits")] Option<f64>),
    Min(#[serde(with = "opt_bits")] Option<f64>),
    Max(#[serde(with = "opt_bits")] Option<f64>),
    Avg {
        #[serde(with = "bits")]
        sum: f64,
        n: i64,
    },
    Hll(#[serde(with = "hex_bytes")] Vec<u8>),
}

/// Floats as their bits: JSON text would round a running sum, and a restored state must go on
/// exactly as the uninterrupted one.
mod bits {
    pub fn serialize<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let b: u64 = serde::Deserialize::deserialize(d)?;
        Ok(f64::from_bits(b))
    }
}

mod opt_bits {
    pub fn serialize<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&v.to_bits()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        let b: Option<u64> = serde::Deserialize::deserialize(d)?;
        Ok(b.map(f64::from_bits))
    }
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

impl Acc {
    fn new(func: Func) -> Self {
        match func {
            Func::Count => Acc::Count(0),
            Func::Sum => Acc::Sum(None),
            Func::Min => Acc::Min(None),
            Func::Max => Acc::Max(None),
            Func::Avg => Acc::Avg { sum: 0.0, n: 0 },
            Func::ApproxCountDistinct => Acc::Hll(vec![0; HLL_REGISTERS]),
        }
    }
}

/// A checkpoint of the step.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    format: String,
    key_types: Vec<String>,
    aggregates: Vec<String>,
    /// Window size and slide, µs: windows of another shape cannot continue these.
    size: i64,
    slide: i64,
    watermark: Option<i64>,
    /// `(window start, group key as hex Arrow row bytes, accumulators)`.
    windows: Vec<(i64, String, Vec<Acc>)>,
}

/// A window's start and its group key (Arrow row bytes, which sort like the values).
type WindowKey = (i64, Vec<u8>);

/// The step.
pub struct WindowAggregate {
    name: String,
    time_index: usize,
    size: i64,
    slide: i64,
    lateness: i64,
    group_indices: Vec<usize>,
    group_fields: Vec<Field>,
    aggregates: Vec<Aggregate>,
    max_open: usize,
    converter: RowConverter,
    /// Open windows: (start, group key as Arrow row bytes, which sort like the values) →
    /// accumulators, in emission order.
    open: BTreeMap<WindowKey, Vec<Acc>>,
    time_name: String,
    watermark: Option<i64>,
    time_type: DataType,
    output: SchemaRef,
}

impl WindowAggregate {
    /// Resolves columns and durations against the input schema.
    pub fn build(
        spec: &WindowAggregateSpec,
        name: &str,
        loc: &str,
        input: &SchemaRef,
    ) -> Result<Self> {
        let time_index = input.index_of(&spec.event_time).map_err(|_| {
            CoreError::spec(
                loc,
                "event_time",
                format!("unknown column `{}`", spec.event_time),
            )
            .with_hint(format!("available: {}", crate::steps::column_list(input)))
        })?;
        let time_type = match input.field(time_index).data_type() {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            other => {
                return Err(CoreError::spec(
                    loc,
                    "event_time",
                    format!("`{}` is {other}, not a timestamp", spec.event_time),
                ));
            }
        };
        let size =
            parse_duration_micros(&spec.size).map_err(|e| CoreError::spec(loc, "size", e))?;
        let slide = match &spec.slide {
            Some(s) => parse_duration_micros(s).map_err(|e| CoreError::spec(loc, "slide", e))?,
            None => size,
        };
        if size <= 0 || slide <= 0 {
            return Err(CoreError::spec(
                loc,
                "size",
                "size and slide must be positive",
            ));
        }
        if slide > size {
            return Err(CoreError::spec(
                loc,
                "slide",
                "a slide longer than the size would skip rows between windows",
            ));
        }
        if size % slide != 0 {
            return Err(CoreError::spec(
                loc,
                "slide",
                "the size must be a whole number of slides",
            ));
        }
        let lateness = match &spec.allowed_lateness {
            Some(l) => {
                parse_duration_micros(l).map_err(|e| CoreError::spec(loc, "allowed_lateness", e))?
            }
            None => 0,
        };
        let mut group_indices = Vec::new();
        let mut group_fields = Vec::new();
        for (i, g) in spec.group_by.iter().enumerate() {
            let idx = input.index_of(g).map_err(|_| {
                CoreError::spec(
                    loc,
                    format!("group_by[{i}]"),
                    format!("unknown column `{g}`"),
                )
                .with_hint(format!("available: {}", crate::steps::column_list(input)))
            })?;
            group_indices.push(idx);
            group_fields.push(input.field(idx).clone().with_nullable(true));
        }
        if spec.aggregates.is_empty() {
            return Err(CoreError::spec(
                loc,
                "aggregates",
                "at least one aggregate is needed",
            ));
        }
        let mut aggregates = Vec::new();
        let mut out_fields: Vec<Field> = group_fields.clone();
        out_fields.push(Field::new("window_start", time_type.clone(), false));
        out_fields.push(Field::new("window_end", time_type.clone(), false));
        for (output, f) in &spec.aggregates {
            let at = format!("aggregates.{output}");
            let func = match f.function.as_str() {
                "count" => Func::Count,
                "sum" => Func::Sum,
                "min" => Func::Min,
                "max" => Func::Max,
                "avg" => Func::Avg,
                "approx_count_distinct" => Func::ApproxCountDistinct,
                other => {
                    return Err(CoreError::spec(loc, &at, format!("unknown fn `{other}`"))
                        .with_hint(
                            "count, sum, min, max, avg, approx_count_distinct".to_string(),
                        ));
                }
            };
            let column = match (&f.column, func) {
                (None, Func::Count) => None,
                (None, _) => return Err(CoreError::spec(loc, &at, "needs a `column`")),
                (Some(c), _) => {
                    let idx = input
                        .index_of(c)
                        .map_err(|_| CoreError::spec(loc, &at, format!("unknown column `{c}`")))?;
                    let dt = input.field(idx).data_type();
                    if !matches!(func, Func::Count | Func::ApproxCountDistinct) && !dt.is_numeric()
                    {
                        return Err(CoreError::spec(
                            loc,
                            &at,
                            format!("`{c}` is {dt}; {} needs a number", f.function),
                        ));
                    }
                    Some(idx)
                }
            };
            if out_fields.iter().any(|f| f.name() == output) {
                return Err(CoreError::spec(
                    loc,
                    &at,
                    "this output name is already taken",
                ));
            }
            let data_type = match func {
                Func::Count => DataType::Int64,
                Func::ApproxCountDistinct => DataType::UInt64,
                _ => DataType::Float64,
            };
            out_fields.push(Field::new(
                output,
                data_type,
                !matches!(func, Func::Count | Func::ApproxCountDistinct),
            ));
            let distinct = match (func, column) {
                (Func::ApproxCountDistinct, Some(c)) => Some(
                    RowConverter::new(vec![SortField::new(input.field(c).data_type().clone())])
                        .map_err(|e| CoreError::spec(loc, &at, e.to_string()))?,
                ),
                _ => None,
            };
            aggregates.push(Aggregate {
                output: output.clone(),
                func,
                column,
                distinct,
            });
        }
        out_fields.push(Field::new(ROW_ID, DataType::UInt32, true));
        let converter = RowConverter::new(
            group_fields
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )
        .map_err(|e| CoreError::spec(loc, "group_by", e.to_string()))?;
        Ok(WindowAggregate {
            name: name.to_string(),
            time_index,
            size,
            slide,
            lateness,
            group_indices,
            group_fields,
            aggregates,
            max_open: spec.max_open_windows.unwrap_or(DEFAULT_MAX_OPEN_WINDOWS),
            converter,
            open: BTreeMap::new(),
            time_name: spec.event_time.clone(),
            watermark: None,
            time_type,
            output: Arc::new(Schema::new(out_fields)),
        })
    }

    /// Open (window, group) pairs (for memory metrics and tests).
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// The latest window start containing `t`.
    fn last_start(&self, t: i64) -> i64 {
        t.div_euclid(self.slide) * self.slide
    }

    fn is_final(&self, start: i64) -> bool {
        self.watermark.is_some_and(|w| {
            start
                .saturating_add(self.size)
                .saturating_add(self.lateness)
                <= w
        })
    }

    /// Emits (and forgets) every window that is final, or all of them.
    fn emit(&mut self, all: bool) -> Result<Option<RecordBatch>> {
        let mut done: Vec<(WindowKey, Vec<Acc>)> = Vec::new();
        let keys: Vec<WindowKey> = self
            .open
            .keys()
            .filter(|(start, _)| all || self.is_final(*start))
            .cloned()
            .collect();
        for k in keys {
            if let Some(v) = self.open.remove(&k) {
                done.push((k, v));
            }
        }
        if done.is_empty() {
            return Ok(None);
        }
        // By window end, then start (the same for one size), then group: the map's order.
        done.sort_by(|a, b| a.0.cmp(&b.0));
        let n = done.len();
        let mut columns: Vec<ArrayRef> = if self.group_fields.is_empty() {
            Vec::new()
        } else {
            let parser = self.converter.parser();
            self.converter
                .convert_rows(done.iter().map(|((_, r), _)| parser.parse(r)))?
        };
        let starts: Vec<i64> = done.iter().map(|((s, _), _)| *s).collect();
        let tz = match &self.time_type {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(starts.clone()).with_timezone_opt(tz.clone()),
        ));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(
                starts
                    .iter()
                    .map(|s| s.saturating_add(self.size))
                    .collect::<Vec<_>>(),
            )
            .with_timezone_opt(tz),
        ));
        for (i, a) in self.aggregates.iter().enumerate() {
            let accs = done.iter().map(|(_, v)| &v[i]);
            let col: ArrayRef = match a.func {
                Func::Count => Arc::new(Int64Array::from_iter_values(accs.map(|acc| match acc {
                    Acc::Count(c) => *c,
                    _ => 0,
                }))),
                Func::ApproxCountDistinct => {
                    Arc::new(UInt64Array::from_iter_values(accs.map(|acc| match acc {
                        Acc::Hll(r) => hll_estimate(r),
                        _ => 0,
                    })))
                }
                _ => Arc::new(Float64Array::from_iter(accs.map(|acc| match acc {
                    Acc::Sum(v) | Acc::Min(v) | Acc::Max(v) => *v,
                    Acc::Avg { sum, n } if *n > 0 => Some(sum / *n as f64),
                    _ => None,
                }))),
            };
            columns.push(col);
        }
        columns.push(Arc::new(UInt32Array::new_null(n)));
        Ok(Some(RecordBatch::try_new(self.output.clone(), columns)?))
    }
}

fn numbers(col: &ArrayRef) -> Result<Float64Array> {
    let cast = arrow::compute::cast(col, &DataType::Float64)?;
    Ok(cast.as_primitive::<arrow::datatypes::Float64Type>().clone())
}

fn hll_add(registers: &mut [u8], hash: u64) {
    let index = (hash >> (64 - HLL_BITS)) as usize;
    let rest = (hash << HLL_BITS) | (1 << (HLL_BITS - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    if let Some(r) = registers.get_mut(index)
        && rank > *r
    {
        *r = rank;
    }
}

fn hll_estimate(registers: &[u8]) -> u64 {
    let m = registers.len() as f64;
    let sum: f64 = registers.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let raw = alpha * m * m / sum;
    let zeros = registers.iter().filter(|r| **r == 0).count();
    let estimate = if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    };
    estimate.round() as u64
}

impl Step for WindowAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        let times = arrow::compute::cast(
            batch.column(self.time_index),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let times = times.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let groups = if self.group_indices.is_empty() {
            None
        } else {
            let cols: Vec<ArrayRef> = self
                .group_indices
                .iter()
                .map(|&i| batch.column(i).clone())
                .collect();
            Some(self.converter.convert_columns(&cols)?)
        };
        let values: Vec<Option<Float64Array>> = self
            .aggregates
            .iter()
            .map(|a| match (a.func, a.column) {
                (Func::Count | Func::ApproxCountDistinct, _) | (_, None) => Ok(None),
                (_, Some(c)) => numbers(batch.column(c)).map(Some),
            })
            .collect::<Result<_>>()?;
        // Fixed seed: HyperLogLog registers are checkpointed, so the hash must not change.
        let hashes: Vec<Option<Vec<u64>>> = self
            .aggregates
            .iter()
            .map(|a| match (&a.distinct, a.column) {
                (Some(conv), Some(c)) => {
                    let rows = conv.convert_columns(&[batch.column(c).clone()])?;
                    Ok(Some(
                        rows.iter()
                            .map(|r| {
                                twox_hash::XxHash3_128::oneshot_with_seed(HLL_SEED, r.as_ref())
                                    as u64
                            })
                            .collect(),
                    ))
                }
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        let ids = row_ids(&batch)?;
        let mut late_ids = Vec::new();
        let mut late_reasons = Vec::new();
        for row in 0..batch.num_rows() {
            if times.is_null(row) {
                late_ids.push(ids.value(row));
                late_reasons.push(format!(
                    "event time `{}` is null: no window",
                    self.time_name
                ));
                continue;
            }
            let t = times.value(row);
            let last = self.last_start(t);
            if self.is_final(last) {
                late_ids.push(ids.value(row));
                late_reasons.push(format!(
                    "late: event time {} is past the watermark {} minus the allowed lateness ({} µs); \
                     its window [{}, {}) was already emitted",
                    micros_text(t),
                    micros_text(self.watermark.unwrap_or(i64::MIN)),
                    self.lateness,
                    micros_text(last),
                    micros_text(last.saturating_add(self.size))
                ));
                continue;
            }
            let group: Vec<u8> = match &groups {
                Some(g) => g.row(row).as_ref().to_vec(),
                None => Vec::new(),
            };
            let mut start = last;
            while start > t.saturating_sub(self.size) {
                if !self.is_final(start) {
                    let key = (start, group.clone());
                    if !self.open.contains_key(&key) && self.open.len() >= self.max_open {
                        return Err(CoreError::Checkpoint {
                            problem: format!(
                                "step `{}`: more than {} open windows (max_open_windows); \
                                 raise it, shorten the windows or the lateness, or group by fewer values",
                                self.name, self.max_open
                            ),
                        });
                    }
                    let accs = self.open.entry(key).or_insert_with(|| {
                        self.aggregates.iter().map(|a| Acc::new(a.func)).collect()
                    });
                    for (i, acc) in accs.iter_mut().enumerate() {
                        let value = values[i]
                            .as_ref()
                            .and_then(|v| v.is_valid(row).then(|| v.value(row)));
                        match acc {
                            Acc::Count(c) => {
                                let counted = match self.aggregates[i].column {
                                    None => true,
                                    Some(col) => batch.column(col).is_valid(row),
                                };
                                if counted {
                                    *c = c.saturating_add(1);
                                }
                            }
                            Acc::Sum(s) => {
                                if let Some(v) = value {
                                    *s = Some(s.unwrap_or(0.0) + v);
                                }
                            }
                            Acc::Min(m) => {
                                if let Some(v) = value {
                                    *m = Some(m.map_or(v, |m| m.min(v)));
                                }
                            }
                            Acc::Max(m) => {
                                if let Some(v) = value {
                                    *m = Some(m.map_or(v, |m| m.max(v)));
                                }
                            }
                            Acc::Avg { sum, n } => {
                                if let Some(v) = value {
                                    *sum += v;
                                    *n = n.saturating_add(1);
                                }
                            }
                            Acc::Hll(r) => {
                                let col = self.aggregates[i].column;
                                if let (Some(h), Some(col)) = (&hashes[i], col)
                                    && batch.column(col).is_valid(row)
                                {
                                    hll_add(r, h[row]);
                                }
                            }
                        }
                    }
                }
                start -= self.slide;
            }
            self.watermark = Some(self.watermark.map_or(t, |w| w.max(t)));
        }
        let rejected = (!late_ids.is_empty()).then(|| Rejected {
            row_ids: UInt32Array::from(late_ids),
            reasons: StringArray::from(late_reasons),
        });
        let out = match self.emit(false)? {
            Some(b) => b,
            None => RecordBatch::new_empty(self.output.clone()),
        };
        Ok(StepOutput {
            batch: out,
            rejected,
            dropped: 0,
            rules: Vec::new(),
        })
    }

    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        self.emit(true)
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>> {
        let state = State {
            format: FORMAT.into(),
            key_types: self
                .group_fields
                .iter()
                .map(|f| f.data_type().to_string())
                .collect(),
            aggregates: self
                .aggregates
                .iter()
                .map(|a| format!("{}:{:?}", a.output, a.func))
                .collect(),
            size: self.size,
            slide: self.slide,
            watermark: self.watermark,
            windows: self
                .open
                .iter()
                .map(|((s, g), accs)| (*s, hex::encode(g), accs.clone()))
                .collect(),
        };
        serde_json::to_vec(&state)
            .map(Some)
            .map_err(|e| CoreError::Checkpoint {
                problem: format!("step `{}`: {e}", self.name),
            })
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let bad = |p: String| CoreError::Checkpoint {
            problem: format!("step `{}`: {p}", self.name),
        };
        let state: State = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not a window_aggregate checkpoint: {e}")))?;
        if state.format != FORMAT {
            return Err(bad(format!(
                "format `{}`, expected `{FORMAT}`",
                state.format
            )));
        }
        let types: Vec<String> = self
            .group_fields
            .iter()
            .map(|f| f.data_type().to_string())
            .collect();
        if state.key_types != types {
            return Err(bad(format!(
                "written for group types {:?}, this step groups by {types:?}",
                state.key_types
            )));
        }
        let aggs: Vec<String> = self
            .aggregates
            .iter()
            .map(|a| format!("{}:{:?}", a.output, a.func))
            .collect();
        if state.aggregates != aggs {
            return Err(bad(format!(
                "written for aggregates {:?}, this step has {aggs:?}",
                state.aggregates
            )));
        }
        if (state.size, state.slide) != (self.size, self.slide) {
            return Err(bad(format!(
                "written for windows of size {} µs sliding {} µs; this step's are {} µs sliding {} µs",
                state.size, state.slide, self.size, self.slide
            )));
        }
        let parser = self.converter.parser();
        let mut open = BTreeMap::new();
        for (start, key, accs) in state.windows {
            let bytes = hex::decode(&key).map_err(|e| bad(format!("group key: {e}")))?;
            if accs.len() != self.aggregates.len() {
                return Err(bad("a window has the wrong number of aggregates".into()));
            }
            if self.group_fields.is_empty() != bytes.is_empty() {
                return Err(bad("a group key does not match the group columns".into()));
            }
            if !bytes.is_empty() {
                // Bytes from outside: they must decode under this converter before use.
                let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.converter.convert_rows([parser.parse(&bytes)])
                }));
                if !matches!(decoded, Ok(Ok(_))) {
                    return Err(bad("a group key does not decode".into()));
                }
            }
            open.insert((start, bytes), accs);
        }
        self.open = open;
        self.watermark = state.watermark;
        Ok(())
    }
}

fn micros_text(t: i64) -> String {
    crate::sample::iso_millis(t.div_euclid(1000))
}
