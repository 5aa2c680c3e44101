//! Python bindings: `import strata` runs the same Rust pipelines over pyarrow record batches.
//!
//! Batches cross the boundary through the Arrow C data interface (zero-copy). Nothing is
//! re-implemented in Python: the module is a thin shell over `strata_core::Pipeline`. Errors are
//! mapped to Python exceptions in one place, [`errors`].

mod errors;

use arrow::datatypes::Schema;
use arrow::pyarrow::PyArrowType;
use arrow::record_batch::RecordBatch;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use strata_core::{BuildContext, Pipeline, PipelineSpec};

use errors::to_py;

type Batch = PyArrowType<RecordBatch>;

/// A Strata pipeline. Built from YAML (or JSON) text; validated against the schema of the
/// input (given, or taken from the first batch).
#[pyclass(name = "Pipeline", module = "strata", unsendable)]
struct PyPipeline {
    spec: PipelineSpec,
    inner: Option<Pipeline>,
}

impl PyPipeline {
    fn ready(&mut self, schema: &arrow::datatypes::SchemaRef) -> PyResult<&mut Pipeline> {
        if self.inner.is_none() {
            let p = Pipeline::build(&self.spec, schema.clone(), &BuildContext::default())
                .map_err(to_py)?;
            self.inner = Some(p);
        }
        self.inner
            .as_mut()
            .ok_or_else(|| errors::internal("pipeline not built"))
    }

    fn built(&self) -> PyResult<&Pipeline> {
        self.inner.as_ref().ok_or_else(|| {
            errors::state("the pipeline is built on the first batch (or pass input_schema)")
        })
    }
}

fn output_to_py(out: strata_core::Output) -> (Vec<Batch>, Batch) {
    (
        out.rows.into_iter().map(PyArrowType).collect(),
        PyArrowType(out.quarantined),
    )
}

#[pymethods]
impl PyPipeline {
    /// `Pipeline(spec_text, input_schema=None)`: YAML or JSON text.
    #[new]
    #[pyo3(signature = (spec, input_schema = None))]
    fn new(spec: &str, input_schema: Option<PyArrowType<Schema>>) -> PyResult<Self> {
        let parsed = if spec.trim_start().starts_with('{') {
            PipelineSpec::from_json(spec)
        } else {
            PipelineSpec::from_yaml(spec)
        }
        .map_err(to_py)?;
        let mut me = PyPipeline {
            spec: parsed,
            inner: None,
        };
        if let Some(PyArrowType(schema)) = input_schema {
            me.ready(&std::sync::Arc::new(schema))?;
        }
        Ok(me)
    }

    /// Reads a spec file.
    #[staticmethod]
    #[pyo3(signature = (path, input_schema = None))]
    fn from_file(path: &str, input_schema: Option<PyArrowType<Schema>>) -> PyResult<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| errors::io(format!("cannot read `{path}`: {e}")))?;
        Self::new(&text, input_schema)
    }

    /// Runs one batch: returns `(rows: list[RecordBatch], quarantined: RecordBatch)`.
    fn process(&mut self, batch: Batch) -> PyResult<(Vec<Batch>, Batch)> {
        let batch = batch.0;
        let p = self.ready(&batch.schema())?;
        Ok(output_to_py(p.process(&batch).map_err(to_py)?))
    }

    /// Flushes stateful steps at end of input.
    fn finish(&mut self) -> PyResult<(Vec<Batch>, Batch)> {
        let p = self
            .inner
            .as_mut()
            .ok_or_else(|| errors::state("nothing was processed"))?;
        Ok(output_to_py(p.finish().map_err(to_py)?))
    }

    /// State of stateful steps as bytes.
    fn checkpoint<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let state = self.built()?.checkpoint().map_err(to_py)?;
        Ok(PyBytes::new(py, &state))
    }

    /// Restores a checkpoint of the same spec (needs the pipeline built: pass `input_schema`).
    fn restore(&mut self, state: &[u8]) -> PyResult<()> {
        let p = self
            .inner
            .as_mut()
            .ok_or_else(|| errors::state("pass input_schema to restore before the first batch"))?;
        p.restore(state).map_err(to_py)
    }

    /// Counters since build, as a JSON string (`json.loads` it).
    fn metrics_json(&self) -> PyResult<String> {
        serde_json::to_string(self.built()?.metrics()).map_err(|e| errors::internal(e.to_string()))
    }

    /// Output schema (declared columns, then lineage).
    fn output_schema(&self) -> PyResult<PyArrowType<Schema>> {
        Ok(PyArrowType(self.built()?.output_schema().as_ref().clone()))
    }

    /// Step graph with schemas.
    fn plan(&self) -> PyResult<String> {
        Ok(self.built()?.plan())
    }

    /// Pipeline name.
    #[getter]
    fn name(&self) -> String {
        self.spec.name.clone()
    }
}

/// The input schema of records read from files (`_raw`, `_source`, `_ingested_at`, `_file`, `_line`).
#[pyfunction]
fn file_input_schema() -> PyArrowType<Schema> {
    PyArrowType(strata_core::lineage::file_input_schema().as_ref().clone())
}

/// The `strata` Python module.
#[pymodule]
fn strata(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPipeline>()?;
    m.add_function(wrap_pyfunction!(file_input_schema, m)?)?;
    errors::register(m)?;
    Ok(())
}
