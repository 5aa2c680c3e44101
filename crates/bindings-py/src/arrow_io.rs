//! Arrow data across the boundary through the C data interface, in both directions without
//! copying: anything that exports `__arrow_c_array__` (a record batch) or `__arrow_c_stream__`
//! (pyarrow tables and readers, polars data frames, DuckDB relations) comes in; pyarrow tables go
//! out, their buffers still the ones Rust allocated.

use arrow::array::{Array, ArrayData, RecordBatch, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use arrow::ffi_stream::ArrowArrayStreamReader;
use arrow_pyarrow::{FromPyArrow, IntoPyArrow, Table};
use pyo3::prelude::*;

use crate::errors;

/// Batches of any Arrow-exporting object, with their schema.
pub(crate) fn batches_from(data: &Bound<'_, PyAny>) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    if data.hasattr("__arrow_c_array__")? {
        let batch = RecordBatch::from_pyarrow_bound(data)?;
        return Ok((batch.schema(), vec![batch]));
    }
    if data.hasattr("__arrow_c_stream__")? {
        let reader = ArrowArrayStreamReader::from_pyarrow_bound(data)?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(errors::arrow)?;
        return Ok((schema, batches));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "expected Arrow data (an object with __arrow_c_array__ or __arrow_c_stream__: a pyarrow \
         RecordBatch or Table, a polars DataFrame, a DuckDB relation), got {}",
        data.get_type().name()?
    )))
}

/// A pyarrow Table of `batches` (no copy: each batch is exported through the C interface).
pub(crate) fn to_table<'py>(
    py: Python<'py>,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> PyResult<Bound<'py, PyAny>> {
    Table::try_new(batches, schema)
        .map_err(errors::arrow)?
        .into_pyarrow(py)
}

/// A pyarrow RecordBatchReader over `reader` (pulled lazily from Python).
pub(crate) fn to_reader<'py>(
    py: Python<'py>,
    reader: Box<dyn RecordBatchReader + Send>,
) -> PyResult<Bound<'py, PyAny>> {
    reader.into_pyarrow(py)
}

/// The addresses of every non-empty buffer of `batches` (validity, offsets, values, children):
/// what a zero-copy export must hand to Python unchanged.
pub(crate) fn buffer_addresses(batches: &[RecordBatch]) -> Vec<usize> {
    fn walk(data: &ArrayData, out: &mut Vec<usize>) {
        if let Some(nulls) = data.nulls() {
            out.push(nulls.buffer().as_ptr() as usize);
        }
        for b in data.buffers() {
            if !b.is_empty() {
                out.push(b.as_ptr() as usize);
            }
        }
        for child in data.child_data() {
            walk(child, out);
        }
    }
    let mut out = Vec::new();
    for batch in batches {
        for column in batch.columns() {
            walk(&column.to_data(), &mut out);
        }
    }
    out
}
