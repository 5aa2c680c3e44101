//! Keyed tables: the merge behind the `snapshot` (SCD1) and `historical` (SCD2) table kinds.
//!
//! A keyed table is rewritten key by key: a driver finds the table rows that hold the keys a
//! batch of change events touches, hands them to [`KeyedTable::merge`] followed by the events,
//! and writes what comes back in their place (copy-on-write). The merge is pure and ordered by
//! the declared source sequence, never by arrival, so any arrival order and any replay of the
//! same events gives the same table:
//!
//! * `snapshot`: the row of each key's highest sequence; a delete (`op = d`) removes the key (or
//!   keeps its row with `op = d`, with `deletes: soft`). An equal sequence is a replay: the row
//!   already in the table stays.
//! * `historical`: one version per distinct sequence, each valid on the half-open interval
//!   `[valid_from, valid_to)` where `valid_to` is the next version's `valid_from` exactly; the
//!   current version's `valid_to` is null; a delete is a version of its own, closed at once
//!   (`valid_to = valid_from`), and leaves no current version.
//!
//! * `change_state`: one row per change of a key, ordered by sequence like `historical`, with
//!   the declared state column's transition: `from_state` (the previous change's state),
//!   `to_state`, `entered_at` (its event time), `left_at` (the next change's) and
//!   `duration_ms`; so a key's durations add up to its lifetime. A change that keeps the state
//!   is a row too (from = to), so a late event between two of them still lands correctly.
//!
//! Hard deletes forget the key: an event older than the delete that arrives in a later commit
//! brings the key back. Sources that can deliver that late (not a binlog, which is ordered) use
//! `deletes: soft`, whose row remembers the delete's sequence.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};

use crate::error::{CoreError, Result};
use crate::spec::{DeleteMode, FullLoadMode, OutputSpec, TableKind};

/// Start of a historical version's validity (its event time).
pub const VALID_FROM: &str = "valid_from";
/// End of a historical version's validity (exclusive; null while current).
pub const VALID_TO: &str = "valid_to";
/// True for the version that is current (a deleted key has none).
pub const IS_CURRENT: &str = "is_current";
/// The state a change-state row leaves (null for a key's first state).
pub const FROM_STATE: &str = "from_state";
/// The state a change-state row enters.
pub const TO_STATE: &str = "to_state";
/// When the state was entered (the event time).
pub const ENTERED_AT: &str = "entered_at";
/// When the state was left (the next change's event time; null while in it).
pub const LEFT_AT: &str = "left_at";
/// Milliseconds spent in the state (null while in it).
pub const DURATION_MS: &str = "duration_ms";

/// A keyed table kind, validated against the pipeline's output schema.
#[derive(Debug, Clone)]
pub struct KeyedTable {
    kind: TableKind,
    key: Vec<usize>,
    sequence: Vec<usize>,
    op: Option<usize>,
    deletes: DeleteMode,
    full_load: FullLoadMode,
    event_time: Option<usize>,
    state: Option<usize>,
    base: SchemaRef,
    table: SchemaRef,
}

fn spec_error(field: &str, problem: impl Into<String>) -> CoreError {
    CoreError::spec("output", field, problem)
}

fn column_index(base: &Schema, field: &str, name: &str) -> Result<usize> {
    base.index_of(name)
        .map_err(|_| spec_error(field, format!("`{name}` is not an output column")))
}

impl KeyedTable {
    /// The keyed kind `output` declares over rows of `base` (the pipeline's output schema), or
    /// `None` for an append table. Errors name the `output` field at fault.
    pub fn from_spec(output: &OutputSpec, base: SchemaRef) -> Result<Option<Self>> {
        if output.kind == TableKind::Append {
            for (field, set) in [
                ("full_load", !output.full_load.is_upsert()),
                ("key", !output.key.is_empty()),
                ("sequence", !output.sequence.is_empty()),
                ("op", output.op.is_some()),
                ("state", output.state.is_some()),
            ] {
                if set {
                    return Err(spec_error(
                        field,
                        "only a keyed table kind uses it: set `kind: snapshot` or `kind: historical`",
                    ));
                }
            }
            return Ok(None);
        }
        if output.full_load == FullLoadMode::Replace
            && (output.kind != TableKind::Snapshot || output.deletes != DeleteMode::Hard)
        {
            return Err(spec_error(
                "full_load",
                "`replace` mirrors the newest full load in a `snapshot` table with hard deletes",
            ));
        }
        if output.key.is_empty() {
            return Err(spec_error("key", "a keyed table needs its key columns"));
        }
        if output.sequence.is_empty() {
            return Err(spec_error(
                "sequence",
                "a keyed table needs the columns that order each key's changes (e.g. binlog file, position and row)",
            ));
        }
        let key = output
            .key
            .iter()
            .map(|c| column_index(&base, "key", c))
            .collect::<Result<Vec<_>>>()?;
        let sequence = output
            .sequence
            .iter()
            .map(|c| column_index(&base, "sequence", c))
            .collect::<Result<Vec<_>>>()?;
        let op = match &output.op {
            None => None,
            Some(c) => {
                let i = column_index(&base, "op", c)?;
                if !matches!(
                    base.field(i).data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    return Err(spec_error("op", format!("`{c}` is not a string column")));
                }
                Some(i)
            }
        };
        let event_time = match &output.event_time {
            Some(c) => Some(column_index(&base, "event_time", c)?),
            None => None,
        };
        let mut fields: Vec<FieldRef> = base.fields().iter().cloned().collect();
        let state = match (&output.state, output.kind) {
            (Some(c), TableKind::ChangeState) => Some(column_index(&base, "state", c)?),
            (None, TableKind::ChangeState) => {
                return Err(spec_error(
                    "state",
                    "a change_state table needs the state column whose transitions it records",
                ));
            }
            (Some(_), _) => {
                return Err(spec_error("state", "only a change_state table uses it"));
            }
            (None, _) => None,
        };
        if let Some(s) = state {
            let Some(et) = event_time else {
                return Err(spec_error(
                    "event_time",
                    "a change_state table needs the event time its states are entered at",
                ));
            };
            let time = base.field(et).data_type().clone();
            if !matches!(time, DataType::Timestamp(..)) {
                return Err(spec_error(
                    "event_time",
                    "a change_state table needs a timestamp",
                ));
            }
            let state_type = base.field(s).data_type().clone();
            for name in [FROM_STATE, TO_STATE, ENTERED_AT, LEFT_AT, DURATION_MS] {
                if base.index_of(name).is_ok() {
                    return Err(spec_error(
                        "schema",
                        format!("`{name}` is a column a change_state table adds; rename yours"),
                    ));
                }
            }
            fields.push(Arc::new(Field::new(FROM_STATE, state_type.clone(), true)));
            fields.push(Arc::new(Field::new(TO_STATE, state_type, true)));
            fields.push(Arc::new(Field::new(ENTERED_AT, time.clone(), true)));
            fields.push(Arc::new(Field::new(LEFT_AT, time, true)));
            fields.push(Arc::new(Field::new(DURATION_MS, DataType::Int64, true)));
        }
        if output.kind == TableKind::Historical {
            let Some(et) = event_time else {
                return Err(spec_error(
                    "event_time",
                    "a historical table needs the event time its versions are valid from",
                ));
            };
            for name in [VALID_FROM, VALID_TO, IS_CURRENT] {
                if base.index_of(name).is_ok() {
                    return Err(spec_error(
                        "schema",
                        format!("`{name}` is a column a historical table adds; rename yours"),
                    ));
                }
            }
            let time = base.field(et).data_type().clone();
            fields.push(Arc::new(Field::new(VALID_FROM, time.clone(), true)));
            fields.push(Arc::new(Field::new(VALID_TO, time, true)));
            fields.push(Arc::new(Field::new(IS_CURRENT, DataType::Boolean, false)));
        }
        Ok(Some(KeyedTable {
            kind: output.kind,
            key,
            sequence,
            op,
            deletes: output.deletes,
            full_load: output.full_load,
            event_time,
            state,
            table: Arc::new(Schema::new(fields)),
            base,
        }))
    }

    /// The table kind.
    pub fn kind(&self) -> TableKind {
        self.kind
    }

    /// Names of the key columns.
    pub fn key_names(&self) -> Vec<&str> {
        self.key
            .iter()
            .map(|&i| self.base.field(i).name().as_str())
            .collect()
    }

    /// Schema of the rows [`KeyedTable::merge`] takes: the pipeline's output.
    pub fn base_schema(&self) -> &SchemaRef {
        &self.base
    }

    /// Schema of the table: the pipeline's output, plus the validity columns of `historical`.
    pub fn table_schema(&self) -> &SchemaRef {
        &self.table
    }

    /// The table's new rows for the keys in `rows`: the table's current rows for those keys
    /// first (older content wins a tie, so a replay changes nothing), then the change events,
    /// all with [`KeyedTable::base_schema`] (drop the validity columns of table rows first).
    /// The result has [`KeyedTable::table_schema`], sorted by key, then sequence.
    pub fn merge(&self, rows: &RecordBatch) -> Result<RecordBatch> {
        let n = rows.num_rows();
        if u32::try_from(n).is_err() {
            return Err(CoreError::Internal(format!(
                "{n} rows in one keyed merge; at most {} fit",
                u32::MAX
            )));
        }
        let keys = self.row_form(rows, &self.key)?;
        let seqs = self.row_form(rows, &self.sequence)?;
        let deleted = self.deleted(rows)?;
        let cmp = |a: &u32, b: &u32| {
            let (a, b) = (*a as usize, *b as usize);
            keys.row(a)
                .cmp(&keys.row(b))
                .then_with(|| seqs.row(a).cmp(&seqs.row(b)))
                .then(a.cmp(&b))
        };
        // The table's rows come first and are already in order (a merge writes them sorted):
        // only the rest (the events) is sorted, then the two runs are merged, O(n + k log k)
        // instead of O(n log n) for n table rows and k events.
        let mut sorted_prefix = n.min(1);
        while sorted_prefix < n
            && cmp(&(sorted_prefix as u32 - 1), &(sorted_prefix as u32)) == Ordering::Less
        {
            sorted_prefix += 1;
        }
        let mut rest: Vec<u32> = (sorted_prefix as u32..n as u32).collect();
        rest.sort_by(cmp);
        let mut order: Vec<u32> = Vec::with_capacity(n);
        let (mut i, mut j) = (0u32, 0usize);
        while (i as usize) < sorted_prefix || j < rest.len() {
            let take_prefix = (i as usize) < sorted_prefix
                && (j == rest.len() || cmp(&i, &rest[j]) == Ordering::Less);
            if take_prefix {
                order.push(i);
                i += 1;
            } else {
                order.push(rest[j]);
                j += 1;
            }
        }
        // One entry per (key, sequence): the first row of each run, in key then sequence order.
        let mut versions: Vec<u32> = Vec::with_capacity(n);
        for (i, &row) in order.iter().enumerate() {
            let dup = i > 0 && {
                let prev = order[i - 1] as usize;
                keys.row(prev) == keys.row(row as usize) && seqs.row(prev) == seqs.row(row as usize)
            };
            if !dup {
                versions.push(row);
            }
        }
        let last_of_key = |i: usize| {
            i + 1 == versions.len()
                || keys.row(versions[i] as usize) != keys.row(versions[i + 1] as usize)
        };
        match self.kind {
            TableKind::Snapshot => {
                let keep: Vec<u32> = (0..versions.len())
                    .filter(|&i| last_of_key(i))
                    .map(|i| versions[i])
                    .filter(|&row| !(deleted[row as usize] && self.deletes == DeleteMode::Hard))
                    .collect();
                self.take_rows(rows, &keep)
            }
            TableKind::Historical => self.history(rows, &versions, &deleted, last_of_key),
            TableKind::ChangeState => self.transitions(rows, &versions, &keys),
            TableKind::Append => Err(CoreError::Internal(
                "an append table has no keyed merge".into(),
            )),
        }
    }

    fn history(
        &self,
        rows: &RecordBatch,
        versions: &[u32],
        deleted: &[bool],
        last_of_key: impl Fn(usize) -> bool,
    ) -> Result<RecordBatch> {
        let et = self
            .event_time
            .ok_or_else(|| CoreError::Internal("historical table without event time".into()))?;
        let mut valid_to: Vec<Option<u32>> = Vec::with_capacity(versions.len());
        let mut current: Vec<bool> = Vec::with_capacity(versions.len());
        for (i, &row) in versions.iter().enumerate() {
            let is_deleted = deleted[row as usize];
            if !last_of_key(i) {
                valid_to.push(Some(versions[i + 1]));
                current.push(false);
            } else if is_deleted {
                valid_to.push(Some(row));
                current.push(false);
            } else {
                valid_to.push(None);
                current.push(true);
            }
        }
        let base = self.take_rows(rows, versions)?;
        let times = rows.column(et);
        let valid_from = take(times, &UInt32Array::from(versions.to_vec()), None)?;
        let valid_to = take(times, &UInt32Array::from(valid_to), None)?;
        let mut columns: Vec<ArrayRef> = base.columns().to_vec();
        columns.push(valid_from);
        columns.push(valid_to);
        columns.push(Arc::new(BooleanArray::from(current)));
        Ok(RecordBatch::try_new(self.table.clone(), columns)?)
    }

    fn transitions(
        &self,
        rows: &RecordBatch,
        versions: &[u32],
        keys: &Rows,
    ) -> Result<RecordBatch> {
        let (Some(et), Some(state)) = (self.event_time, self.state) else {
            return Err(CoreError::Internal(
                "change_state without event time or state".into(),
            ));
        };
        let same_key = |a: u32, b: u32| keys.row(a as usize) == keys.row(b as usize);
        let mut previous: Vec<Option<u32>> = Vec::with_capacity(versions.len());
        let mut next: Vec<Option<u32>> = Vec::with_capacity(versions.len());
        for (i, &row) in versions.iter().enumerate() {
            previous.push((i > 0 && same_key(versions[i - 1], row)).then(|| versions[i - 1]));
            next.push(versions.get(i + 1).filter(|&&n| same_key(n, row)).copied());
        }
        let base = self.take_rows(rows, versions)?;
        let at = |indices: Vec<Option<u32>>, column: usize| {
            take(rows.column(column), &UInt32Array::from(indices), None)
        };
        let here: Vec<Option<u32>> = versions.iter().map(|&v| Some(v)).collect();
        let entered = at(here.clone(), et)?;
        let left = at(next, et)?;
        let millis = |a: &ArrayRef| -> Result<ArrayRef> {
            let unit = match a.data_type() {
                DataType::Timestamp(unit, _) => *unit,
                _ => return Err(CoreError::Internal("event time is not a timestamp".into())),
            };
            let ints = cast(a, &DataType::Int64)?;
            let per_ms = match unit {
                arrow::datatypes::TimeUnit::Second => {
                    return Ok(arrow::compute::kernels::numeric::mul(
                        &ints,
                        &arrow::array::Int64Array::new_scalar(1000),
                    )?);
                }
                arrow::datatypes::TimeUnit::Millisecond => 1,
                arrow::datatypes::TimeUnit::Microsecond => 1_000,
                arrow::datatypes::TimeUnit::Nanosecond => 1_000_000,
            };
            Ok(arrow::compute::kernels::numeric::div(
                &ints,
                &arrow::array::Int64Array::new_scalar(per_ms),
            )?)
        };
        let duration = arrow::compute::kernels::numeric::sub(&millis(&left)?, &millis(&entered)?)?;
        let mut columns: Vec<ArrayRef> = base.columns().to_vec();
        columns.push(at(previous, state)?);
        columns.push(at(here, state)?);
        columns.push(entered);
        columns.push(left);
        columns.push(duration);
        Ok(RecordBatch::try_new(self.table.clone(), columns)?)
    }

    fn take_rows(&self, rows: &RecordBatch, indices: &[u32]) -> Result<RecordBatch> {
        let indices = UInt32Array::from(indices.to_vec());
        let columns = rows
            .columns()
            .iter()
            .map(|c| take(c, &indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let schema = if self.kind == TableKind::Snapshot {
            self.table.clone()
        } else {
            self.base.clone()
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    fn row_form(&self, rows: &RecordBatch, columns: &[usize]) -> Result<Rows> {
        let arrays: Vec<ArrayRef> = columns.iter().map(|&i| rows.column(i).clone()).collect();
        let converter = RowConverter::new(
            arrays
                .iter()
                .map(|a| SortField::new(a.data_type().clone()))
                .collect(),
        )?;
        Ok(converter.convert_columns(&arrays)?)
    }

    fn deleted(&self, rows: &RecordBatch) -> Result<Vec<bool>> {
        let Some(op) = self.op else {
            return Ok(vec![false; rows.num_rows()]);
        };
        let op = cast(rows.column(op), &DataType::Utf8)?;
        let op = op
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| CoreError::Internal("op column is not a string".into()))?;
        Ok((0..op.len())
            .map(|i| op.is_valid(i) && op.value(i) == "d")
            .collect())
    }
}

mod replace;

#[cfg(test)]
mod tests;
