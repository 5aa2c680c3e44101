//! The one error type of the analytics API, grouped by who must act: the operator (config), the
//! client (a refused or bad request), or nobody yet (the lake or a backend is unavailable). Each
//! request error maps to one HTTP status and a machine-readable `kind`.

use axum::http::StatusCode;

/// Errors of `strata-serving`.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// The serve config is wrong: fix the YAML.
    #[error("config {what}: {problem} (hint: {hint})")]
    Config {
        /// Where in the config (a YAML path or file).
        what: String,
        /// What is wrong.
        problem: String,
        /// What to do.
        hint: &'static str,
    },
    /// The statement is not a read-only query, or uses something the API refuses.
    #[error("refused {kind}: {reason}")]
    Refused {
        /// The statement kind or feature (`CREATE TABLE`, `COPY`, `table function read_parquet`).
        kind: String,
        /// Why.
        reason: String,
    },
    /// A request parameter is missing or not of its declared type.
    #[error("bad parameter `{parameter}`: {problem}")]
    BadParameter {
        /// The parameter (`by`, `where`, `from`…).
        parameter: String,
        /// What is wrong with it.
        problem: String,
    },
    /// SQL that does not parse or plan (a client mistake).
    #[error("query failed to plan: {message}")]
    Plan {
        /// DataFusion's message.
        message: String,
    },
    /// A table, dataset or metric that does not exist.
    #[error("no {what} named `{name}`")]
    NotFound {
        /// `table`, `dataset`, `metric`.
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// No API key, or an unknown one.
    #[error("unauthorized: {reason}")]
    Unauthorized {
        /// Why.
        reason: &'static str,
    },
    /// The key may not read this dataset.
    #[error("key `{key}` may not read `{dataset}`")]
    Forbidden {
        /// The key's name (never the key).
        key: String,
        /// The dataset asked for.
        dataset: String,
    },
    /// The key's rate limit is spent.
    #[error("rate limit of key `{key}` exceeded; retry in {retry_after_s} s")]
    RateLimited {
        /// The key's name.
        key: String,
        /// Seconds until a request is allowed again.
        retry_after_s: u64,
    },
    /// The query ran past its time limit and was cancelled.
    #[error("query cancelled after its time limit of {limit_ms} ms")]
    Timeout {
        /// The limit.
        limit_ms: u64,
    },
    /// The query needed more memory than its pool allows.
    #[error("query needs more than its memory limit of {limit_mb} MB: {message}")]
    MemoryLimit {
        /// The limit.
        limit_mb: u64,
        /// DataFusion's message.
        message: String,
    },
    /// Reading the lake failed (transient or an operator problem).
    #[error("lake: {message}")]
    Lake {
        /// What failed.
        message: String,
    },
    /// Running a planned query failed for another reason.
    #[error("query failed: {message}")]
    Execution {
        /// DataFusion's message.
        message: String,
    },
}

impl ServingError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ServingError::Refused { .. }
            | ServingError::BadParameter { .. }
            | ServingError::Plan { .. } => StatusCode::BAD_REQUEST,
            ServingError::NotFound { .. } => StatusCode::NOT_FOUND,
            ServingError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ServingError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ServingError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ServingError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ServingError::MemoryLimit { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ServingError::Config { .. }
            | ServingError::Lake { .. }
            | ServingError::Execution { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ServingError::Config { .. } => "config",
            ServingError::Refused { .. } => "refused",
            ServingError::BadParameter { .. } => "bad_parameter",
            ServingError::Plan { .. } => "plan",
            ServingError::NotFound { .. } => "not_found",
            ServingError::Unauthorized { .. } => "unauthorized",
            ServingError::Forbidden { .. } => "forbidden",
            ServingError::RateLimited { .. } => "rate_limited",
            ServingError::Timeout { .. } => "timeout",
            ServingError::MemoryLimit { .. } => "memory_limit",
            ServingError::Lake { .. } => "lake",
            ServingError::Execution { .. } => "execution",
        }
    }

    pub(crate) fn bad(parameter: &str, problem: impl Into<String>) -> Self {
        ServingError::BadParameter {
            parameter: parameter.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn config(what: impl Into<String>, problem: impl Into<String>) -> Self {
        ServingError::Config {
            what: what.into(),
            problem: problem.into(),
            hint: "see docs/serving.md for the serve config",
        }
    }

    pub(crate) fn lake(e: impl std::fmt::Display) -> Self {
        ServingError::Lake {
            message: e.to_string(),
        }
    }
}

/// Results of this crate.
pub type Result<T, E = ServingError> = std::result::Result<T, E>;
