//! The one place where Rust errors become Python exceptions. The classes are declared in Python
//! (`strata/errors.py`) so each can also be a built-in (`SpecError` is a `ValueError`, `LakeError`
//! an `OSError`, …); Rust raises them by name with the Rust message.

use pyo3::prelude::*;
use pyo3::types::PyType;
use strata_core::CoreError;

/// The exception classes of `strata.errors`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// The pipeline spec is invalid.
    Spec,
    /// A command's configuration or flags are invalid.
    Config,
    /// A batch could not be processed.
    Data,
    /// A checkpoint cannot be restored.
    Checkpoint,
    /// A blocking audit failed; the model was not published.
    Audit,
    /// Reading or writing the lake failed.
    Lake,
    /// A command failed at run time (I/O, data, a server).
    Command,
    /// Misuse of the API (e.g. `finish` before any batch).
    State,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Spec => "SpecError",
            Kind::Config => "ConfigError",
            Kind::Data => "DataError",
            Kind::Checkpoint => "CheckpointError",
            Kind::Audit => "AuditError",
            Kind::Lake => "LakeError",
            Kind::Command => "CommandError",
            Kind::State => "StateError",
        }
    }
}

/// A `strata.errors` exception of `kind` carrying `message`.
pub(crate) fn raise(kind: Kind, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| {
        let class = py
            .import("strata.errors")
            .and_then(|m| m.getattr(kind.class_name()))
            .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
        match class {
            Ok(class) => PyErr::from_type(class, message),
            // The package is broken (the native module imported alone): still say what failed.
            Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
        }
    })
}

/// A pipeline error, by who must act.
pub(crate) fn core(e: CoreError) -> PyErr {
    let message = e.to_string();
    match e {
        CoreError::SpecSyntax { .. } | CoreError::Spec { .. } => raise(Kind::Spec, message),
        CoreError::Checkpoint { .. } => raise(Kind::Checkpoint, message),
        _ => raise(Kind::Data, message),
    }
}

/// A lake error (catalog, object store, query).
pub(crate) fn lake(e: impl std::fmt::Display) -> PyErr {
    raise(Kind::Lake, e.to_string())
}

/// A command's failure, by its kind.
pub(crate) fn command(f: &strata_cli::Failure) -> PyErr {
    let kind = match f.kind() {
        strata_cli::FailureKind::Config => Kind::Config,
        strata_cli::FailureKind::Audit => Kind::Audit,
        strata_cli::FailureKind::Runtime => Kind::Command,
    };
    raise(kind, format!("{:#}", f.error()))
}

/// Misuse of the API.
pub(crate) fn state(message: &str) -> PyErr {
    raise(Kind::State, message)
}

/// An Arrow conversion failure (the caller passed data the C interface refused).
pub(crate) fn arrow(e: arrow::error::ArrowError) -> PyErr {
    raise(Kind::Data, e.to_string())
}
