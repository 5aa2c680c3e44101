//! `strata.partition_plan(spec, input_schema)`: where a pipeline must be cut and repartitioned
//! to run on many workers (what `strata.spark.transform` does), from
//! [`strata_core::PartitionPlan`].

use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow_pyarrow::FromPyArrow;
use pyo3::prelude::*;
use strata_core::{PartitionPlan, PipelineSpec};

use crate::errors;

/// The plan, as Python sees it: the two stages' specs as JSON text (for `Pipeline(spec,
/// stage=...)` on the workers) and the repartition keys.
#[pyclass(name = "PartitionPlan", module = "strata", frozen, get_all)]
pub(crate) struct PyPartitionPlan {
    /// The prefix spec (JSON), or None when the pipeline needs no cut.
    prefix: Option<String>,
    /// The suffix spec (JSON): the whole pipeline when there is no prefix.
    suffix: String,
    /// Columns to hash-partition by before the suffix (empty: any partitioning).
    keys: Vec<String>,
    /// The stateful step that needs the repartition, if any.
    stateful_step: Option<String>,
}

#[pymethods]
impl PyPartitionPlan {
    fn __repr__(&self) -> String {
        format!(
            "PartitionPlan(keys={:?}, stateful_step={:?}, prefix={})",
            self.keys,
            self.stateful_step,
            self.prefix.is_some()
        )
    }
}

fn to_json(spec: &PipelineSpec) -> PyResult<String> {
    serde_json::to_string(spec).map_err(|e| errors::raise(errors::Kind::Spec, e.to_string()))
}

/// Plans `spec` (YAML or JSON text) for input of `input_schema` (a pyarrow Schema).
#[pyfunction]
pub(crate) fn partition_plan(
    spec: &str,
    input_schema: &Bound<'_, PyAny>,
) -> PyResult<PyPartitionPlan> {
    let parsed = if spec.trim_start().starts_with('{') {
        PipelineSpec::from_json(spec)
    } else {
        PipelineSpec::from_yaml(spec)
    }
    .map_err(errors::core)?;
    let schema = Arc::new(Schema::from_pyarrow_bound(input_schema)?);
    let plan = PartitionPlan::new(&parsed, schema).map_err(errors::core)?;
    Ok(PyPartitionPlan {
        prefix: plan.prefix.as_ref().map(to_json).transpose()?,
        suffix: to_json(&plan.suffix)?,
        keys: plan.keys,
        stateful_step: plan.stateful_step,
    })
}
