//! The one place where Rust errors become Python exceptions:
//! `SpecError` (a `ValueError`: fix the pipeline), `DataError` (a `RuntimeError`: a batch could
//! not be processed), `CheckpointError`, and built-in `OSError` for files.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use strata_core::CoreError;

pyo3::create_exception!(
    strata,
    SpecError,
    PyValueError,
    "The pipeline spec is invalid."
);
pyo3::create_exception!(
    strata,
    DataError,
    PyRuntimeError,
    "A batch could not be processed."
);
pyo3::create_exception!(
    strata,
    CheckpointError,
    PyValueError,
    "A checkpoint cannot be restored."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SpecError", py.get_type::<SpecError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    Ok(())
}

pub(crate) fn to_py(e: CoreError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreError::SpecSyntax { .. } | CoreError::Spec { .. } => SpecError::new_err(msg),
        CoreError::Checkpoint { .. } => CheckpointError::new_err(msg),
        _ => DataError::new_err(msg),
    }
}

pub(crate) fn state(msg: &str) -> PyErr {
    PyRuntimeError::new_err(msg.to_string())
}

pub(crate) fn internal(msg: impl Into<String>) -> PyErr {
    PyRuntimeError::new_err(format!(
        "internal error (a bug in strata, please report it): {}",
        msg.into()
    ))
}

pub(crate) fn io(msg: String) -> PyErr {
    PyOSError::new_err(msg)
}
