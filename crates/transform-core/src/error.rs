//! The one error type of `strata-core`.
//!
//! Variants are grouped by who has to act: a spec problem (fix the YAML), a data problem that
//! could not be quarantined row by row (fix the data or the rule), a checkpoint that does not
//! belong to this pipeline, or an internal bug. Every variant names where it happened (step,
//! field, rule) and most carry a hint saying what to do.

use thiserror::Error;

/// Result alias used across the crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Everything that can go wrong while building or running a pipeline.
#[derive(Debug, Error)]
pub enum CoreError {
    /// The YAML / JSON text of a pipeline spec could not be read.
    #[error("pipeline spec is not valid {format}: {message}")]
    SpecSyntax {
        /// `YAML` or `JSON`.
        format: &'static str,
        /// The parser's message, including line and column.
        message: String,
    },

    /// A spec that parsed but cannot run: unknown column, bad SQL, type conflict…
    #[error("{location}: field `{field}`: {problem}{}", hint_suffix(.hint))]
    Spec {
        /// Which step (e.g. `steps[3] (cast)`) or section (`output`) of the spec.
        location: String,
        /// The spec field or column the problem is about.
        field: String,
        /// What is wrong.
        problem: String,
        /// What to do about it, when we know.
        hint: Option<String>,
    },

    /// A batch handed to the pipeline does not have the schema it was built for.
    #[error("input batch schema does not match the pipeline's input: {problem}")]
    InputSchema {
        /// What differs.
        problem: String,
    },

    /// A run produced a schema other than the one the pipeline declares.
    #[error("step `{step}` produced a schema that differs from the declared output: {problem}")]
    OutputSchema {
        /// The last step.
        step: String,
        /// What differs.
        problem: String,
    },

    /// An expectation with `action: fail` saw failing rows.
    #[error(
        "step `{step}`: expectation `{rule}` failed on {failed_rows} row(s) (check: {check}); first failing row: {first_row}"
    )]
    ExpectationFailed {
        /// Step name.
        step: String,
        /// Rule name.
        rule: String,
        /// The rule's SQL check.
        check: String,
        /// How many rows of the batch failed.
        failed_rows: usize,
        /// The first failing row rendered as JSON (data columns only).
        first_row: String,
    },

    /// Evaluating a step over a batch failed for the batch as a whole.
    #[error("step `{step}` failed on a batch: {message}{}", hint_suffix(.hint))]
    StepFailed {
        /// Step name.
        step: String,
        /// The underlying message.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },

    /// A checkpoint that cannot be restored into this pipeline.
    #[error("cannot restore checkpoint: {problem}")]
    Checkpoint {
        /// Why.
        problem: String,
    },

    /// A bug in Strata: please report it with the message.
    #[error("internal error (a bug in strata-core, please report it): {0}")]
    Internal(String),
}

fn hint_suffix(hint: &Option<String>) -> String {
    match hint {
        Some(h) => format!(" (hint: {h})"),
        None => String::new(),
    }
}

impl CoreError {
    /// A spec error for `field` at `location`.
    pub fn spec(
        location: impl Into<String>,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        CoreError::Spec {
            location: location.into(),
            field: field.into(),
            problem: problem.into(),
            hint: None,
        }
    }

    /// Adds a hint to a spec or step error; other variants are returned unchanged.
    pub fn with_hint(mut self, text: impl Into<String>) -> Self {
        if let CoreError::Spec { hint, .. } | CoreError::StepFailed { hint, .. } = &mut self {
            *hint = Some(text.into());
        }
        self
    }

    /// True when the problem is in the pipeline spec (exit code for "bad config").
    pub fn is_config_error(&self) -> bool {
        matches!(self, CoreError::SpecSyntax { .. } | CoreError::Spec { .. })
    }
}

impl From<arrow::error::ArrowError> for CoreError {
    fn from(e: arrow::error::ArrowError) -> Self {
        CoreError::Internal(format!("arrow: {e}"))
    }
}
