//! `strata.Pipeline`: the Rust pipeline over Arrow data. The GIL is released while batches are
//! processed, so two threads with two pipelines use two cores.

use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_pyarrow::{FromPyArrow, IntoPyArrow};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use strata_core::{BuildContext, Pipeline, PipelineSpec};

use crate::arrow_io::{batches_from, buffer_addresses, to_table};
use crate::envelope::Envelope;
use crate::errors;
use crate::stage::Stage;

/// What `process` and `finish` return: good rows and quarantine, each one pyarrow Table.
type Output<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>);

/// Why a call could not run.
enum Unusable {
    Poisoned,
    NotBuilt,
    Core(strata_core::CoreError),
}

struct Built {
    pipeline: Pipeline,
    input_schema: SchemaRef,
    /// Buffers of the last output handed to Python (see `_exported_buffer_addresses`).
    exported: Vec<usize>,
}

/// A Strata pipeline, built from its spec on the first batch (or at once, given
/// `input_schema`).
#[pyclass(name = "Pipeline", module = "strata")]
pub(crate) struct PyPipeline {
    spec: PipelineSpec,
    stage: Stage,
    built: Mutex<Option<Built>>,
}

fn parse_spec(text: &str) -> PyResult<PipelineSpec> {
    if text.trim_start().starts_with('{') {
        PipelineSpec::from_json(text)
    } else {
        PipelineSpec::from_yaml(text)
    }
    .map_err(errors::core)
}

/// The spec text itself, or the text of the file it names.
fn spec_text(text_or_path: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = text_or_path.extract::<String>()
        && (text.contains('\n') || text.trim_start().starts_with('{') || text.contains(": "))
    {
        return Ok(text);
    }
    let path: std::path::PathBuf = text_or_path.extract()?;
    std::fs::read_to_string(&path).map_err(|e| {
        pyo3::exceptions::PyOSError::new_err(format!(
            "cannot read pipeline `{}`: {e}",
            path.display()
        ))
    })
}

impl PyPipeline {
    fn lock(&self) -> PyResult<MutexGuard<'_, Option<Built>>> {
        self.built
            .lock()
            .map_err(|_| errors::state("a previous call panicked; rebuild the pipeline"))
    }

    fn build(&self, input_schema: SchemaRef) -> strata_core::Result<Built> {
        let pipeline = Pipeline::build(&self.spec, input_schema.clone(), &BuildContext::default())?;
        Ok(Built {
            pipeline,
            input_schema,
            exported: Vec::new(),
        })
    }

    /// Runs `work` on the pipeline with the GIL released, building it first against
    /// `build_for` if it is not built yet. The lock is taken without the GIL too: a thread
    /// holding the GIL never waits on a thread that waits for it.
    fn with_pipeline<T: Send>(
        &self,
        py: Python<'_>,
        build_for: Option<SchemaRef>,
        work: impl FnOnce(&mut Built) -> strata_core::Result<T> + Send,
    ) -> PyResult<T> {
        let outcome = py.detach(|| {
            let mut guard = self.built.lock().map_err(|_| Unusable::Poisoned)?;
            if guard.is_none()
                && let Some(schema) = build_for
            {
                *guard = Some(self.build(schema).map_err(Unusable::Core)?);
            }
            let built = guard.as_mut().ok_or(Unusable::NotBuilt)?;
            work(built).map_err(Unusable::Core)
        });
        outcome.map_err(|u| match u {
            Unusable::Poisoned => errors::state("a previous call panicked; rebuild the pipeline"),
            Unusable::NotBuilt => errors::state("nothing was processed yet (or pass input_schema)"),
            Unusable::Core(e) => errors::core(e),
        })
    }

    fn output<'py>(
        &self,
        py: Python<'py>,
        rows: Vec<RecordBatch>,
        quarantined: RecordBatch,
    ) -> PyResult<Output<'py>> {
        let (schema, quarantine_schema) = {
            let mut guard = self.lock()?;
            let built = guard
                .as_mut()
                .ok_or_else(|| errors::state("the pipeline is not built"))?;
            built.exported = buffer_addresses(&rows);
            built
                .exported
                .extend(buffer_addresses(std::slice::from_ref(&quarantined)));
            (built.pipeline.output_schema(), quarantined.schema())
        };
        Ok((
            to_table(py, schema, rows)?,
            to_table(py, quarantine_schema, vec![quarantined])?,
        ))
    }
}

#[pymethods]
impl PyPipeline {
    /// `Pipeline(spec, input_schema=None, stage="whole")`: YAML or JSON text.
    #[new]
    #[pyo3(signature = (spec, input_schema = None, stage = "whole"))]
    fn new(spec: &str, input_schema: Option<&Bound<'_, PyAny>>, stage: &str) -> PyResult<Self> {
        let me = PyPipeline {
            spec: parse_spec(spec)?,
            stage: Stage::parse(stage).map_err(|e| errors::raise(errors::Kind::Spec, e))?,
            built: Mutex::new(None),
        };
        if let Some(schema) = input_schema {
            let schema = Arc::new(arrow::datatypes::Schema::from_pyarrow_bound(schema)?);
            let schema = me.stage_schema(schema)?;
            let built = me.build(schema).map_err(errors::core)?;
            *me.lock()? = Some(built);
        }
        Ok(me)
    }

    /// `Pipeline.from_yaml(text_or_path, input_schema=None)`.
    #[staticmethod]
    #[pyo3(signature = (spec, input_schema = None, stage = "whole"))]
    fn from_yaml(
        spec: &Bound<'_, PyAny>,
        input_schema: Option<&Bound<'_, PyAny>>,
        stage: &str,
    ) -> PyResult<Self> {
        Self::new(&spec_text(spec)?, input_schema, stage)
    }

    /// Runs Arrow data (a RecordBatch, a Table, a reader, a polars DataFrame, a DuckDB
    /// relation…) through the pipeline: returns `(rows, quarantine)` as pyarrow Tables.
    fn process<'py>(&self, py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Output<'py>> {
        let (schema, batches) = batches_from(data)?;
        let stage = self.stage;
        let schema = self.stage_schema(schema)?;
        let (rows, quarantined) = self.with_pipeline(py, Some(schema), move |built| {
            let mut rows = Vec::new();
            let mut quarantined = Vec::new();
            for batch in &batches {
                let out = built.pipeline.process(&stage.input(batch)?)?;
                rows.extend(out.rows.into_iter().filter(|b| b.num_rows() > 0));
                quarantined.push(stage.quarantine(out.quarantined)?);
            }
            let q = concat_or_empty(&built.pipeline, stage, quarantined)?;
            Ok((rows, q))
        })?;
        self.output(py, rows, quarantined)
    }

    /// Flushes stateful steps at the end of input: `(rows, quarantine)`.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Output<'py>> {
        let stage = self.stage;
        let (rows, quarantined) = self.with_pipeline(py, None, move |built| {
            let out = built.pipeline.finish()?;
            let rows: Vec<RecordBatch> =
                out.rows.into_iter().filter(|b| b.num_rows() > 0).collect();
            Ok((rows, stage.quarantine(out.quarantined)?))
        })?;
        self.output(py, rows, quarantined)
    }

    /// The pipeline and its state as bytes: `Pipeline.restore(bytes)` rebuilds both.
    fn checkpoint<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let state = self.with_pipeline(py, None, |built| built.pipeline.checkpoint())?;
        let input_schema = self
            .lock()?
            .as_ref()
            .map(|b| b.input_schema.clone())
            .ok_or_else(|| errors::state("the pipeline is not built"))?;
        let envelope = Envelope {
            spec: self.spec.clone(),
            stage: self.stage,
            input_schema,
            state,
        };
        let bytes = envelope
            .encode()
            .map_err(|e| errors::raise(errors::Kind::Checkpoint, e))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Rebuilds a pipeline and its state from `checkpoint()` bytes.
    #[staticmethod]
    fn restore(py: Python<'_>, checkpoint: &[u8]) -> PyResult<Self> {
        let envelope =
            Envelope::decode(checkpoint).map_err(|e| errors::raise(errors::Kind::Checkpoint, e))?;
        let me = PyPipeline {
            spec: envelope.spec,
            stage: envelope.stage,
            built: Mutex::new(None),
        };
        let state = envelope.state;
        me.with_pipeline(py, Some(envelope.input_schema), move |built| {
            built.pipeline.restore(&state)
        })?;
        Ok(me)
    }

    /// Counters since the pipeline was built (rows in/out, quarantined, per step and rule).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = {
            let guard = self.lock()?;
            let built = guard
                .as_ref()
                .ok_or_else(|| errors::state("nothing was processed yet (or pass input_schema)"))?;
            serde_json::to_string(built.pipeline.metrics())
                .map_err(|e| errors::raise(errors::Kind::Data, e.to_string()))?
        };
        py.import("json")?.call_method1("loads", (text,))
    }

    /// The step graph with the schema after each step.
    fn plan(&self) -> PyResult<String> {
        let guard = self.lock()?;
        let built = guard
            .as_ref()
            .ok_or_else(|| errors::state("nothing was processed yet (or pass input_schema)"))?;
        Ok(built.pipeline.plan())
    }

    /// The schema of output rows (declared columns, then lineage), as a pyarrow Schema.
    fn output_schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let guard = self.lock()?;
        let built = guard
            .as_ref()
            .ok_or_else(|| errors::state("nothing was processed yet (or pass input_schema)"))?;
        built
            .pipeline
            .output_schema()
            .as_ref()
            .clone()
            .into_pyarrow(py)
    }

    /// The schema of quarantine rows, as a pyarrow Schema.
    fn quarantine_schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let guard = self.lock()?;
        let built = guard
            .as_ref()
            .ok_or_else(|| errors::state("nothing was processed yet (or pass input_schema)"))?;
        let schema = self.stage_quarantine_schema(built)?;
        schema.as_ref().clone().into_pyarrow(py)
    }

    /// The pipeline's name.
    #[getter]
    fn name(&self) -> String {
        self.spec.name.clone()
    }

    /// The stage this pipeline runs (`whole`, `prefix` or `suffix`).
    #[getter]
    fn stage(&self) -> &'static str {
        self.stage.name()
    }

    /// Addresses of the buffers of the last `process` / `finish` output as Rust allocated them
    /// (a diagnostic: equal to pyarrow's `Buffer.address` values when nothing was copied).
    fn _exported_buffer_addresses(&self) -> PyResult<Vec<usize>> {
        Ok(self
            .lock()?
            .as_ref()
            .map(|b| b.exported.clone())
            .unwrap_or_default())
    }

    fn __repr__(&self) -> String {
        format!(
            "Pipeline(name={:?}, stage={:?})",
            self.spec.name,
            self.stage.name()
        )
    }
}

impl PyPipeline {
    /// The schema the stage's pipeline is built against, from its input's.
    fn stage_schema(&self, schema: SchemaRef) -> PyResult<SchemaRef> {
        let empty = RecordBatch::new_empty(schema);
        Ok(self.stage.input(&empty).map_err(errors::core)?.schema())
    }

    fn stage_quarantine_schema(&self, built: &Built) -> PyResult<SchemaRef> {
        let empty = RecordBatch::new_empty(built.pipeline.quarantine_schema());
        Ok(self.stage.quarantine(empty).map_err(errors::core)?.schema())
    }
}

/// One quarantine batch from several (an empty one when there were none).
fn concat_or_empty(
    pipeline: &Pipeline,
    stage: Stage,
    batches: Vec<RecordBatch>,
) -> strata_core::Result<RecordBatch> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => stage
            .quarantine(RecordBatch::new_empty(pipeline.quarantine_schema()))?
            .schema(),
    };
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// Registers the class.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPipeline>()
}
