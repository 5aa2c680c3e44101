//! Incremental models: only the recent interval (`incremental_by_time`) or the changed keys
//! (`incremental_by_key`) are recomputed and merged into the gold table by copy-on-write.
//!
//! A model's SQL bounds its input with `@start` and `@end` (timestamp literals when it runs):
//!
//! ```sql
//! -- materialization: incremental_by_time
//! -- time_column: hour
//! -- lookback: 2h
//! SELECT device_id, date_trunc('hour', ts) AS hour, count(*) AS readings
//! FROM iot_events WHERE ts >= @start AND ts < @end GROUP BY 1, 2
//! ```
//!
//! * `incremental_by_time`: `@start` is the newest `time_column` value in the table minus
//!   `lookback` (the whole time line on the first run, after the SQL changed, or with a full
//!   refresh). The table's rows at or after `@start` are replaced by the model's output, so a
//!   re-run of the same interval is idempotent and a late silver row inside the lookback is
//!   picked up. Only data files whose `time_column` upper bound reaches `@start` are rewritten.
//! * `incremental_by_key`: the output's rows replace the table's rows with the same grain
//!   key; other rows stay. With a `time_column`, `@start` is found as above; without one the
//!   SQL reads its whole input and the merge still rewrites only files holding changed keys.

use std::collections::HashSet;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::row::{RowConverter, SortField};
use datafusion::prelude::SessionContext;
use iceberg::spec::{ManifestEntryRef, PrimitiveLiteral, PrimitiveType, Type};

use crate::error::{LayersError, Result};
use crate::silver::IcebergTable;

/// `@start` when the whole time line is recomputed.
pub const EPOCH: &str = "1970-01-01 00:00:00";
/// `@end` of unit tests: after any test row.
pub const FAR_FUTURE: &str = "9999-12-31 23:59:59";

/// A timestamp literal's text for `micros` since the epoch (UTC).
pub fn timestamp_text(micros: i64) -> String {
    arrow::temporal_conversions::timestamp_us_to_datetime(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
        .unwrap_or_else(|| EPOCH.to_string())
}

/// Microseconds since the epoch of each value of a time column (dates at midnight UTC);
/// `None` for a type that is not a time.
fn micros_of(column: &ArrayRef) -> Option<Int64Array> {
    let as_us = match column.data_type() {
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
            cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None)).ok()?
        }
        _ => return None,
    };
    let ints = cast(&as_us, &DataType::Int64).ok()?;
    ints.as_any().downcast_ref::<Int64Array>().cloned()
}

/// The newest value of `time_column` in `table_sql` (a quoted table name in `ctx`), in
/// microseconds; `None` for an empty table.
pub async fn newest_time(
    ctx: &SessionContext,
    table_sql: &str,
    time_column: &str,
    file: &str,
) -> Result<Option<i64>> {
    let query = format!(
        "SELECT max({}) FROM {table_sql}",
        super::audit::ident(time_column)
    );
    let fail = |e: datafusion::error::DataFusionError| LayersError::Model {
        file: file.to_string(),
        at: String::new(),
        problem: format!("reading the newest {time_column} of the table: {e}"),
        hint: "time_column must name a timestamp or date column of the model's output",
    };
    let batches = ctx
        .sql(&query)
        .await
        .map_err(fail)?
        .collect()
        .await
        .map_err(fail)?;
    let Some(column) = batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| b.column(0))
    else {
        return Ok(None);
    };
    let micros = micros_of(column).ok_or_else(|| LayersError::Model {
        file: file.to_string(),
        at: String::new(),
        problem: format!(
            "time_column {time_column} is {}, not a time",
            column.data_type()
        ),
        hint: "time_column must name a timestamp or date column of the model's output",
    })?;
    Ok((!micros.is_null(0)).then(|| micros.value(0)))
}

/// Checks the new output of an incremental-by-time model: every row has a time at or after
/// `start`. Rows before it would duplicate rows the table keeps.
pub fn check_output_interval(
    batches: &[RecordBatch],
    time_column: &str,
    start: i64,
    file: &str,
) -> Result<()> {
    let err = |problem: String| LayersError::Model {
        file: file.to_string(),
        at: String::new(),
        problem,
        hint: "filter the model's input with `WHERE <time> >= @start AND <time> < @end`",
    };
    let (mut before, mut null) = (0usize, 0usize);
    for b in batches {
        let column = b
            .column_by_name(time_column)
            .ok_or_else(|| err(format!("the output has no time_column {time_column}")))?;
        let micros = micros_of(column)
            .ok_or_else(|| err(format!("time_column {time_column} is not a time")))?;
        null += micros.null_count();
        before += micros.iter().flatten().filter(|t| *t < start).count();
    }
    if null > 0 {
        return Err(err(format!(
            "{null} output rows have no {time_column}: an incremental model's rows need a time"
        )));
    }
    if before > 0 {
        return Err(err(format!(
            "{before} output rows have {time_column} before @start ({})",
            timestamp_text(start)
        )));
    }
    Ok(())
}

/// Whether a data file may hold rows at or after `start` (by its `time_column` upper bound;
/// a file without a bound may).
pub fn may_reach(entry: &ManifestEntryRef, field_id: i32, start: i64) -> bool {
    let Some(upper) = entry.data_file().upper_bounds().get(&field_id) else {
        return true;
    };
    let micros = match (upper.data_type(), upper.literal()) {
        (PrimitiveType::Timestamp | PrimitiveType::Timestamptz, PrimitiveLiteral::Long(v)) => {
            Some(*v)
        }
        (PrimitiveType::TimestampNs | PrimitiveType::TimestamptzNs, PrimitiveLiteral::Long(v)) => {
            Some(v.div_euclid(1000))
        }
        (PrimitiveType::Date, PrimitiveLiteral::Int(days)) => {
            i64::from(*days).checked_mul(86_400_000_000)
        }
        _ => None,
    };
    micros.is_none_or(|m| m >= start)
}

/// The Iceberg field id of a top-level column of `table`.
pub fn field_id(table: &IcebergTable, column: &str) -> Option<i32> {
    let field = table.metadata().current_schema().field_by_name(column)?;
    matches!(*field.field_type, Type::Primitive(_)).then_some(field.id)
}

/// The rows of `batch` whose `time_column` is before `start` (kept by a by-time merge).
pub fn rows_before(batch: &RecordBatch, time_column: &str, start: i64) -> Result<RecordBatch> {
    let Some(column) = batch.column_by_name(time_column) else {
        return Ok(batch.clone());
    };
    let micros = micros_of(column)
        .ok_or_else(|| LayersError::Internal(format!("time_column {time_column} is not a time")))?;
    let keep: BooleanArray = micros
        .iter()
        .map(|t| Some(t.is_some_and(|t| t < start)))
        .collect();
    filter_record_batch(batch, &keep).map_err(|e| LayersError::Internal(e.to_string()))
}

/// The grain keys of a set of batches, for a by-key merge.
pub struct KeySet {
    converter: RowConverter,
    columns: Vec<String>,
    types: Vec<DataType>,
    keys: HashSet<Vec<u8>>,
}

impl KeySet {
    /// The keys (`columns`) of `batches`.
    pub fn of(batches: &[RecordBatch], columns: &[String], file: &str) -> Result<KeySet> {
        let err = |problem: String| LayersError::Model {
            file: file.to_string(),
            at: String::new(),
            problem,
            hint: "an incremental_by_key model's grain names its key columns",
        };
        let Some(first) = batches.first() else {
            return Ok(KeySet {
                converter: RowConverter::new(Vec::new())
                    .map_err(|e| LayersError::Internal(e.to_string()))?,
                columns: columns.to_vec(),
                types: Vec::new(),
                keys: HashSet::new(),
            });
        };
        let types: Vec<DataType> = columns
            .iter()
            .map(|c| {
                first
                    .column_by_name(c)
                    .map(|a| a.data_type().clone())
                    .ok_or_else(|| err(format!("the output has no grain column {c}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
        let converter =
            RowConverter::new(fields).map_err(|e| LayersError::Internal(e.to_string()))?;
        let mut set = KeySet {
            converter,
            types,
            columns: columns.to_vec(),
            keys: HashSet::new(),
        };
        for b in batches {
            let rows = set.rows(b)?;
            for r in rows.iter() {
                if !set.keys.insert(r.as_ref().to_vec()) {
                    return Err(err(format!(
                        "the output has two rows with the same grain ({})",
                        columns.join(", ")
                    )));
                }
            }
        }
        Ok(set)
    }

    fn rows(&self, batch: &RecordBatch) -> Result<arrow::row::Rows> {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|c| {
                batch.column_by_name(c).cloned().ok_or_else(|| {
                    LayersError::Internal(format!("a gold file has no grain column {c}"))
                })
            })
            .collect::<Result<_>>()?;
        // Stored rows may carry other (plain vs view) types than the new output: cast to the
        // converter's.
        let arrays = arrays
            .iter()
            .zip(&self.types)
            .map(|(a, t)| cast(a, t).map_err(|e| LayersError::Internal(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        self.converter
            .convert_columns(&arrays)
            .map_err(|e| LayersError::Internal(e.to_string()))
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The rows of `batch` whose key is not in the set, and how many were dropped.
    pub fn rows_not_in(&self, batch: &RecordBatch) -> Result<(RecordBatch, usize)> {
        if self.keys.is_empty() {
            return Ok((batch.clone(), 0));
        }
        let rows = self.rows(batch)?;
        let keep: BooleanArray = rows
            .iter()
            .map(|r| Some(!self.keys.contains(r.as_ref())))
            .collect();
        let dropped = keep.false_count();
        let kept =
            filter_record_batch(batch, &keep).map_err(|e| LayersError::Internal(e.to_string()))?;
        Ok((kept, dropped))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};

    fn batch(keys: &[&str], times: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC")),
            ],
        )
        .unwrap()
    }

    #[test]
    fn by_time_keeps_rows_before_start_and_refuses_output_before_it() {
        let b = batch(&["a", "b", "c"], &[10, 20, 30]);
        assert_eq!(rows_before(&b, "t", 20).unwrap().num_rows(), 1);
        assert!(check_output_interval(std::slice::from_ref(&b), "t", 10, "m.sql").is_ok());
        let e = check_output_interval(&[b], "t", 20, "m.sql")
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 output rows") && e.contains("@start"), "{e}");
        assert_eq!(timestamp_text(3_600_000_000), "1970-01-01 01:00:00.000000");
    }

    #[test]
    fn by_key_drops_the_replaced_keys_and_refuses_duplicate_grain() {
        let new = batch(&["b"], &[99]);
        let keys = KeySet::of(&[new], &["k".to_string()], "m.sql").unwrap();
        let (kept, dropped) = keys
            .rows_not_in(&batch(&["a", "b", "c"], &[1, 2, 3]))
            .unwrap();
        assert_eq!((kept.num_rows(), dropped), (2, 1));
        let e = KeySet::of(&[batch(&["a", "a"], &[1, 2])], &["k".into()], "m.sql")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("same grain"), "{e}");
    }
}
