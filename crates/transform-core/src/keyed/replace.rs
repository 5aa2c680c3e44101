//! Full loads that replace a `snapshot` table (`output.full_load: replace`).
//!
//! A database full load is the whole table at one moment, so a key it lacks was deleted at the
//! source. The merge itself only sees keys that have events; before it, the driver hands the
//! table's rows through [`KeyedTable::rows_in_load`], which drops the rows of keys the load
//! lacks. What the merge then writes is exactly the load's keys, each at its newest version (a
//! re-loaded unchanged row keeps the row already in the table).

use std::collections::HashSet;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::row::{RowConverter, SortField};

use super::KeyedTable;
use crate::error::Result;
use crate::spec::FullLoadMode;

impl KeyedTable {
    /// True when a commit of this table is a whole full load whose missing keys are deleted.
    pub fn replaces_missing_keys(&self) -> bool {
        self.full_load == FullLoadMode::Replace
    }

    /// The rows of `table_rows` whose key occurs in `load` (both with
    /// [`KeyedTable::base_schema`]): what survives a full load that replaces the table.
    pub fn rows_in_load(
        &self,
        table_rows: &RecordBatch,
        load: &RecordBatch,
    ) -> Result<RecordBatch> {
        let key_columns = |rows: &RecordBatch| -> Vec<ArrayRef> {
            self.key.iter().map(|&i| rows.column(i).clone()).collect()
        };
        // One converter for both sides: row forms are only comparable within a converter.
        let converter = RowConverter::new(
            key_columns(load)
                .iter()
                .map(|a| SortField::new(a.data_type().clone()))
                .collect(),
        )?;
        let loaded = converter.convert_columns(&key_columns(load))?;
        let present: HashSet<&[u8]> = loaded.iter().map(|r| r.data()).collect();
        let held = converter.convert_columns(&key_columns(table_rows))?;
        let keep: BooleanArray = held
            .iter()
            .map(|r| Some(present.contains(r.data())))
            .collect();
        Ok(filter_record_batch(table_rows, &keep)?)
    }
}
