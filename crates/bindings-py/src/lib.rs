//! Python bindings: the native module `strata._strata` behind the `strata` package.
//!
//! - [`pipeline`]: `Pipeline`, the Rust pipeline over any Arrow data (C data interface, no
//!   copies), with the GIL released while it works;
//! - [`plan`]: `partition_plan`, how to run one pipeline on many workers (Spark);
//! - [`lake`]: `Lake`, tables and bronze as Arrow streams, and the lake's jobs;
//! - [`cli`]: `run` / `main`, every `strata` command in-process;
//! - [`errors`]: Rust errors as the typed exceptions of `strata.errors`.
//!
//! Nothing is re-implemented here: each function is a thin shell over a library crate.

mod arrow_io;
mod cli;
mod crypto;
mod envelope;
mod errors;
mod lake;
mod pipeline;
mod plan;
mod stage;

use arrow_pyarrow::IntoPyArrow;
use pyo3::prelude::*;

/// The input schema of raw records read from files: `_raw`, `_source`, `_ingested_at`, `_file`,
/// `_line`.
#[pyfunction]
fn file_input_schema(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    strata_core::lineage::file_input_schema()
        .as_ref()
        .clone()
        .into_pyarrow(py)
}

/// The input schema of raw records consumed from Kafka.
#[pyfunction]
fn kafka_input_schema(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    strata_core::lineage::kafka_input_schema()
        .as_ref()
        .clone()
        .into_pyarrow(py)
}

/// Addresses of the buffers of Arrow data as Rust receives it (a diagnostic: equal to the
/// caller's `Buffer.address` values when the import copied nothing).
#[pyfunction]
fn _imported_buffer_addresses(data: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let (_, batches) = arrow_io::batches_from(data)?;
    Ok(arrow_io::buffer_addresses(&batches))
}

/// The native module.
#[pymodule]
fn _strata(m: &Bound<'_, PyModule>) -> PyResult<()> {
    pipeline::register(m)?;
    m.add_class::<lake::PyLake>()?;
    m.add_class::<plan::PyPartitionPlan>()?;
    m.add_function(wrap_pyfunction!(plan::partition_plan, m)?)?;
    m.add_function(wrap_pyfunction!(cli::run, m)?)?;
    m.add_function(wrap_pyfunction!(crypto::decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(cli::main, m)?)?;
    m.add_function(wrap_pyfunction!(file_input_schema, m)?)?;
    m.add_function(wrap_pyfunction!(kafka_input_schema, m)?)?;
    m.add_function(wrap_pyfunction!(_imported_buffer_addresses, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
