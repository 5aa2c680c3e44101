//! Errors of the runtime, grouped by who must act: the user's configuration, the data, or a
//! transient condition worth retrying.

use strata_connectors::ConnectorError;
use strata_core::CoreError;
use strata_layers::error::LayersError;

/// Result with [`RuntimeError`].
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Who must act on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration (spec, flags, config file) must change.
    Config,
    /// The input data or the stored output is not what it must be.
    Data,
    /// Infrastructure (network, broker, store): retrying may succeed.
    Transient,
}

/// Every error a driver can stop with.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A pipeline error.
    #[error(transparent)]
    Core(Box<CoreError>),
    /// A source or sink of the connectors crate failed.
    #[error(transparent)]
    Connector(Box<ConnectorError>),
    /// The lake (bronze, silver, catalog) failed.
    #[error(transparent)]
    Layers(Box<LayersError>),
    /// The driver was configured in a way that cannot work.
    #[error("{what}: {problem} (hint: {hint})")]
    Config {
        /// What is wrong (a flag, a field).
        what: String,
        /// The problem.
        problem: String,
        /// What to do.
        hint: &'static str,
    },
    /// An exactly-once protocol refused to go on (another writer, a foreign state).
    #[error("{table}: {problem} (hint: {hint})")]
    Protocol {
        /// The table or output concerned.
        table: String,
        /// What happened.
        problem: String,
        /// What to do.
        hint: &'static str,
    },
    /// A state file of the driver cannot be read or written.
    #[error("state file {file}: {problem} (hint: {hint})")]
    State {
        /// The file or folder.
        file: String,
        /// What happened.
        problem: String,
        /// What to do.
        hint: &'static str,
    },
    /// A stage of the driver stopped without reporting why (a bug, or a panic in it).
    #[error("the {stage} stage stopped: {message}")]
    Stage {
        /// `source`, `pipeline` or `sink`.
        stage: &'static str,
        /// What is known.
        message: String,
    },
}

impl From<CoreError> for RuntimeError {
    fn from(e: CoreError) -> Self {
        RuntimeError::Core(Box::new(e))
    }
}

impl From<ConnectorError> for RuntimeError {
    fn from(e: ConnectorError) -> Self {
        RuntimeError::Connector(Box::new(e))
    }
}

impl From<LayersError> for RuntimeError {
    fn from(e: LayersError) -> Self {
        RuntimeError::Layers(Box::new(e))
    }
}

impl RuntimeError {
    /// Who must act.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::Core(e) if e.is_config_error() => ErrorKind::Config,
            RuntimeError::Core(_) => ErrorKind::Data,
            RuntimeError::Connector(e) if e.is_unreachable() => ErrorKind::Transient,
            RuntimeError::Connector(_) => ErrorKind::Data,
            RuntimeError::Layers(e) => match e.as_ref() {
                LayersError::CommitConflict { .. } | LayersError::Store { .. } => {
                    ErrorKind::Transient
                }
                LayersError::LakeUrl { .. } => ErrorKind::Config,
                _ => ErrorKind::Data,
            },
            RuntimeError::Config { .. } => ErrorKind::Config,
            RuntimeError::Protocol { .. } | RuntimeError::State { .. } => ErrorKind::Data,
            RuntimeError::Stage { .. } => ErrorKind::Transient,
        }
    }

    /// A configuration error.
    pub fn config(what: impl Into<String>, problem: impl Into<String>, hint: &'static str) -> Self {
        RuntimeError::Config {
            what: what.into(),
            problem: problem.into(),
            hint,
        }
    }
}
