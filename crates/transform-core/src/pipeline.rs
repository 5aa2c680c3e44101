//! The pipeline: a validated chain of steps with a declared output — the same object in the
//! streaming driver (one `process` per micro-batch) and the batch driver (one per file chunk).
//!
//! Contract: for any input and any split of it into batches, the concatenated output and
//! quarantine of `process`×N + `finish` equal those of one `process` + `finish` (see the
//! proptests in `tests/stream_equals_batch.rs`). Rows keep input order; quarantine rows are in
//! input order within each call.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, RecordBatch, StringArray, UInt32Array, new_null_array,
};
use arrow::compute::{concat, sort_to_indices, take};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use sha2::{Digest, Sha256};

use crate::checkpoint::Envelope;
use crate::error::{CoreError, Result};
use crate::lineage::{RAW, is_reserved};
use crate::metrics::PipelineMetrics;
use crate::spec::{PipelineSpec, StepSpec};
use crate::step::{ROW_ID, Rejected, Step, location, row_ids, with_row_id};
use crate::steps;
use crate::types::{schema_from_map, type_name};

/// Name of the quarantine column holding the raw record.
pub const QUARANTINE_RAW: &str = "_raw";
/// Name of the quarantine column holding the step that rejected the row.
pub const QUARANTINE_STEP: &str = "_step";
/// Name of the quarantine column holding the reason.
pub const QUARANTINE_REASON: &str = "_reason";

/// Resolves a secret (e.g. an HMAC key) by name.
pub type SecretResolver = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Options for building a pipeline that come from the environment, not the spec.
pub struct BuildContext {
    secret: SecretResolver,
}

impl Default for BuildContext {
    /// Secrets (HMAC keys) are read from environment variables.
    fn default() -> Self {
        BuildContext {
            secret: Box::new(|name| std::env::var(name).ok()),
        }
    }
}

impl BuildContext {
    /// Resolves secrets with `f` instead of the environment (tests, secret managers).
    pub fn with_secrets(f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        BuildContext {
            secret: Box::new(f),
        }
    }
}

/// What `process` / `finish` return.
#[derive(Debug, Clone)]
pub struct Output {
    /// Good rows, with the declared output schema (data columns, then lineage columns).
    pub rows: Vec<RecordBatch>,
    /// Rejected rows: raw record, step, reason and lineage.
    pub quarantined: RecordBatch,
    /// Counters for this call.
    pub metrics: PipelineMetrics,
}

impl Output {
    /// Number of good rows.
    pub fn num_rows(&self) -> usize {
        self.rows.iter().map(|b| b.num_rows()).sum()
    }
}

/// A built, validated pipeline.
pub struct Pipeline {
    spec: PipelineSpec,
    fingerprint: String,
    /// Per step: sha256 of its spec — a state is restored only into the config that wrote it.
    step_fingerprints: Vec<String>,
    input_schema: SchemaRef,
    raw_index: Option<usize>,
    step_input: Vec<usize>,
    step_input_schema: SchemaRef,
    lineage: Vec<usize>,
    steps: Vec<Box<dyn Step>>,
    kinds: Vec<&'static str>,
    final_order: Vec<usize>,
    required: Vec<usize>,
    output_schema: SchemaRef,
    quarantine_schema: SchemaRef,
    metrics: PipelineMetrics,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.spec.name)
            .field("steps", &self.kinds)
            .finish()
    }
}

fn reserved_problem(location: &str, name: &str) -> CoreError {
    CoreError::spec(
        location,
        name,
        "names starting with `_` are reserved for lineage columns",
    )
}

impl Pipeline {
    /// Validates `spec` against the schema of the batches that will be processed.
    pub fn build(spec: &PipelineSpec, input_schema: SchemaRef, ctx: &BuildContext) -> Result<Self> {
        let names = step_names(spec)?;

        // Which input columns feed the steps, and which are lineage.
        let raw_column = match spec.steps.first() {
            Some(StepSpec::ParseJson(p)) => {
                Some(p.column.clone().unwrap_or_else(|| RAW.to_string()))
            }
            _ => None,
        };
        for (i, s) in spec.steps.iter().enumerate().skip(1) {
            if matches!(s, StepSpec::ParseJson(_)) {
                return Err(CoreError::spec(
                    location(i, "parse_json", &names[i]),
                    "type",
                    "parse_json must be the first step",
                ));
            }
        }
        let raw_index = match &raw_column {
            Some(c) => Some(input_schema.index_of(c).map_err(|_| {
                CoreError::spec(
                    location(0, "parse_json", &names[0]),
                    "column",
                    format!("the input has no column `{c}`"),
                )
            })?),
            None => input_schema.index_of(RAW).ok(),
        };
        let mut step_input = Vec::new();
        let mut lineage = Vec::new();
        for (i, f) in input_schema.fields().iter().enumerate() {
            if Some(i) == raw_index {
                if raw_column.is_some() {
                    step_input.push(i);
                }
            } else if is_reserved(f.name()) {
                lineage.push(i);
            } else {
                step_input.push(i);
            }
        }
        let step_input_schema = with_row_id(
            step_input
                .iter()
                .map(|&i| input_schema.fields()[i].clone())
                .collect(),
        );

        // Build the chain.
        let session = crate::expr::session();
        let mut schema = step_input_schema.clone();
        let mut built: Vec<Box<dyn Step>> = Vec::with_capacity(spec.steps.len());
        let mut kinds = Vec::with_capacity(spec.steps.len());
        for (i, s) in spec.steps.iter().enumerate() {
            let loc = location(i, s.type_name(), &names[i]);
            let name = names[i].as_str();
            let step: Box<dyn Step> = match s {
                StepSpec::ParseJson(p) => {
                    Box::new(steps::parse_json::ParseJson::build(p, name, &loc, &schema)?)
                }
                StepSpec::Select(p) => {
                    Box::new(steps::select::Select::build(p, name, &loc, &schema)?)
                }
                StepSpec::Rename(p) => {
                    Box::new(steps::rename::Rename::build(p, name, &loc, &schema)?)
                }
                StepSpec::Cast(p) => Box::new(steps::cast::Cast::build(p, name, &loc, &schema)?),
                StepSpec::Flatten(p) => {
                    Box::new(steps::flatten::Flatten::build(p, name, &loc, &schema)?)
                }
                StepSpec::CdcUnwrap(p) => {
                    Box::new(steps::cdc_unwrap::CdcUnwrap::build(p, name, &loc, &schema)?)
                }
                StepSpec::Filter(p) => Box::new(steps::filter::Filter::build(
                    p, name, &loc, &schema, &session,
                )?),
                StepSpec::Derive(p) => Box::new(steps::derive::Derive::build(
                    p, name, &loc, &schema, &session,
                )?),
                StepSpec::Expect(p) => Box::new(steps::expect::Expect::build(
                    p, name, &loc, &schema, &session,
                )?),
                StepSpec::Mask(p) => Box::new(steps::mask::Mask::build(
                    p,
                    name,
                    &loc,
                    &schema,
                    ctx.secret.as_ref(),
                )?),
                StepSpec::Dedup(p) => Box::new(steps::dedup::Dedup::build(p, name, &loc, &schema)?),
                StepSpec::WindowAggregate(p) => {
                    if i + 1 != spec.steps.len() {
                        return Err(CoreError::spec(
                            &loc,
                            "type",
                            "window_aggregate must be the last step",
                        )
                        .with_hint(
                            "its rows come from many input rows; put filters, casts and masks \
                             before it",
                        ));
                    }
                    Box::new(steps::window_aggregate::WindowAggregate::build(
                        p, name, &loc, &schema,
                    )?)
                }
            };
            schema = step.output_schema();
            built.push(step);
            kinds.push(s.type_name());
        }

        // The declared output must be exactly what the chain produces.
        let declared = schema_from_map(&spec.output.schema)
            .map_err(|(column, e)| CoreError::spec("output", format!("schema.{column}"), e))?;
        if declared.fields().is_empty() {
            return Err(CoreError::spec("output", "schema", "declares no columns"));
        }
        let mut final_order = Vec::with_capacity(declared.fields().len());
        let mut required = Vec::new();
        for (i, f) in declared.fields().iter().enumerate() {
            if is_reserved(f.name()) {
                return Err(reserved_problem("output", &format!("schema.{}", f.name())));
            }
            let idx = schema.index_of(f.name()).map_err(|_| {
                CoreError::spec(
                    "output",
                    format!("schema.{}", f.name()),
                    "declared but no step produces it",
                )
                .with_hint(format!(
                    "the last step produces: {}",
                    steps::column_list(&schema)
                ))
            })?;
            let produced = schema.field(idx).data_type();
            if produced != f.data_type() {
                return Err(CoreError::spec(
                    "output",
                    format!("schema.{}", f.name()),
                    format!(
                        "declared {} but the steps produce {}",
                        type_name(f.data_type()),
                        type_name(produced)
                    ),
                )
                .with_hint("add a `cast` step or change the declared type"));
            }
            if !f.is_nullable() {
                required.push(i);
            }
            final_order.push(idx);
        }
        for f in schema.fields() {
            if f.name() != ROW_ID && declared.field_with_name(f.name()).is_err() {
                return Err(CoreError::spec(
                    "output",
                    "schema",
                    format!("the steps produce `{}`, which is not declared", f.name()),
                )
                .with_hint("declare it, or drop it with a `select` step"));
            }
        }
        if let Some(et) = &spec.output.event_time {
            match declared.field_with_name(et) {
                Ok(f) if matches!(f.data_type(), DataType::Timestamp(..) | DataType::Date32) => {}
                Ok(f) => {
                    return Err(CoreError::spec(
                        "output",
                        "event_time",
                        format!("`{et}` is {}, not a timestamp", type_name(f.data_type())),
                    ));
                }
                Err(_) => {
                    return Err(CoreError::spec(
                        "output",
                        "event_time",
                        format!("`{et}` is not a declared column"),
                    ));
                }
            }
        }
        for (i, p) in spec.output.partition_by.iter().enumerate() {
            validate_partition(p, &declared)
                .map_err(|e| CoreError::spec("output", format!("partition_by[{i}]"), e))?;
        }

        let mut out_fields: Vec<FieldRef> = declared.fields().iter().cloned().collect();
        // Rows of an aggregating last step come from many input rows: no single lineage.
        let aggregated = matches!(spec.steps.last(), Some(StepSpec::WindowAggregate(_)));
        out_fields.extend(lineage.iter().map(|&i| {
            let f = input_schema.fields()[i].clone();
            if aggregated {
                Arc::new(f.as_ref().clone().with_nullable(true))
            } else {
                f
            }
        }));
        let output_schema = Arc::new(Schema::new(out_fields));
        crate::keyed::KeyedTable::from_spec(&spec.output, output_schema.clone())?;
        let mut also_names = std::collections::HashSet::new();
        for (i, (name, also)) in spec.output.also_outputs().into_iter().enumerate() {
            let field = format!("also[{i}]");
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid || name == spec.name || name == format!("{}_quarantine", spec.name) {
                return Err(CoreError::spec(
                    "output",
                    field,
                    format!(
                        "`{name}` cannot name another table: use letters, digits and _, and not the pipeline's own tables"
                    ),
                ));
            }
            if !also_names.insert(name.clone()) {
                return Err(CoreError::spec("output", field, format!("`{name}` twice")));
            }
            for (j, p) in also.partition_by.iter().enumerate() {
                validate_partition(p, &declared).map_err(|e| {
                    CoreError::spec("output", format!("{field}.partition_by[{j}]"), e)
                })?;
            }
            crate::keyed::KeyedTable::from_spec(&also, output_schema.clone()).map_err(|e| {
                CoreError::spec("output", format!("{field} ({name})"), e.to_string())
            })?;
        }
        let mut q_fields: Vec<FieldRef> = vec![
            Arc::new(Field::new(QUARANTINE_RAW, DataType::Binary, true)),
            Arc::new(Field::new(QUARANTINE_STEP, DataType::Utf8, false)),
            Arc::new(Field::new(QUARANTINE_REASON, DataType::Utf8, false)),
        ];
        q_fields.extend(
            lineage
                .iter()
                .map(|&i| Arc::new(input_schema.field(i).clone().with_nullable(true))),
        );
        let quarantine_schema = Arc::new(Schema::new(q_fields));

        let step_ids: Vec<(String, &'static str)> =
            names.iter().cloned().zip(kinds.iter().copied()).collect();
        let fingerprint = hex::encode(Sha256::digest(
            serde_json::to_vec(spec).map_err(|e| CoreError::Internal(e.to_string()))?,
        ));
        let step_fingerprints = spec
            .steps
            .iter()
            .map(|step| {
                serde_json::to_vec(step)
                    .map(|json| hex::encode(Sha256::digest(json)))
                    .map_err(|e| CoreError::Internal(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Pipeline {
            spec: spec.clone(),
            fingerprint,
            step_fingerprints,
            input_schema,
            raw_index,
            step_input,
            step_input_schema,
            lineage,
            steps: built,
            kinds,
            final_order,
            required,
            output_schema,
            quarantine_schema,
            metrics: PipelineMetrics::for_steps(&step_ids),
        })
    }

    /// The spec this pipeline was built from.
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// Schema of input batches.
    pub fn input_schema(&self) -> SchemaRef {
        self.input_schema.clone()
    }

    /// Schema of output batches: declared columns, then lineage columns.
    pub fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// Schema of the quarantine batch: `_raw`, `_step`, `_reason`, then lineage columns.
    pub fn quarantine_schema(&self) -> SchemaRef {
        self.quarantine_schema.clone()
    }

    /// Counters accumulated since build (or restore).
    pub fn metrics(&self) -> &PipelineMetrics {
        &self.metrics
    }

    /// A human-readable plan: each step with the schema it produces.
    pub fn plan(&self) -> String {
        let mut out = format!(
            "pipeline `{}`\n  input: {}\n",
            self.spec.name,
            describe(&self.step_input_schema)
        );
        for (step, kind) in self.steps.iter().zip(&self.kinds) {
            out.push_str(&format!(
                "  {} ({kind}) -> {}\n",
                step.name(),
                describe(&step.output_schema())
            ));
        }
        out.push_str(&format!(
            "  output: {}\n  quarantine: {}\n",
            describe(&self.output_schema),
            describe(&self.quarantine_schema)
        ));
        out
    }

    /// Each step's name and the schema of the batches it returns (without the internal row id).
    pub fn step_schemas(&self) -> Vec<(String, SchemaRef)> {
        self.steps
            .iter()
            .map(|step| {
                let schema = step.output_schema();
                let fields: Vec<_> = schema
                    .fields()
                    .iter()
                    .filter(|f| f.name() != crate::step::ROW_ID)
                    .cloned()
                    .collect();
                (step.name().to_string(), Arc::new(Schema::new(fields)))
            })
            .collect()
    }

    /// Runs one batch through the pipeline.
    pub fn process(&mut self, batch: &RecordBatch) -> Result<Output> {
        self.check_input(batch)?;
        if batch.num_rows() > u32::MAX as usize {
            return Err(CoreError::InputSchema {
                problem: "a batch may hold at most 2^32-1 rows".into(),
            });
        }
        let mut columns: Vec<ArrayRef> = self
            .step_input
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        columns.push(Arc::new(UInt32Array::from_iter_values(
            0..batch.num_rows() as u32,
        )));
        let first = RecordBatch::try_new(self.step_input_schema.clone(), columns)?;
        self.run_from(0, first, Some(batch))
    }

    /// Flushes steps that hold rows back. Rows produced here come from no single input record,
    /// so their lineage columns are null.
    pub fn finish(&mut self) -> Result<Output> {
        let mut total = self.empty_output();
        for i in 0..self.steps.len() {
            if let Some(b) = self.steps[i].finish()? {
                let out = self.run_from(i + 1, b, None)?;
                total.rows.extend(out.rows);
                total.quarantined = arrow::compute::concat_batches(
                    &self.quarantine_schema,
                    [&total.quarantined, &out.quarantined],
                )?;
                total.metrics.merge(&out.metrics);
            }
        }
        Ok(total)
    }

    /// Serialises the state of every stateful step.
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        let mut entries = Vec::new();
        for (step, fingerprint) in self.steps.iter().zip(&self.step_fingerprints) {
            if let Some(state) = step.checkpoint()? {
                entries.push((step.name().to_string(), fingerprint.clone(), state));
            }
        }
        Ok(self.envelope(entries))
    }

    /// The checkpoint bytes of `entries` (step name, step fingerprint, state).
    fn envelope(&self, entries: Vec<(String, String, Vec<u8>)>) -> Vec<u8> {
        Envelope {
            fingerprint: self.fingerprint.clone(),
            entries,
        }
        .encode()
    }

    /// A checkpoint whose cost follows the change: with `full`, the whole state (and every
    /// stateful step starts recording changes from here); otherwise only what changed since the
    /// previous call. Restore with [`Pipeline::restore_chain`]: the last full checkpoint, then
    /// every delta after it, in order.
    pub fn checkpoint_incremental(&mut self, full: bool) -> Result<Vec<u8>> {
        if full {
            let bytes = self.checkpoint()?;
            self.start_deltas();
            return Ok(bytes);
        }
        let mut entries = Vec::new();
        for (step, fingerprint) in self.steps.iter_mut().zip(&self.step_fingerprints) {
            if let Some(state) = step.checkpoint_delta()? {
                entries.push((step.name().to_string(), fingerprint.clone(), state));
            }
        }
        Ok(self.envelope(entries))
    }

    /// Has every stateful step record its changes from now on, so the next
    /// [`Pipeline::checkpoint_incremental`] may be a delta on the current state.
    pub fn start_deltas(&mut self) {
        for step in &mut self.steps {
            step.start_delta();
        }
    }

    /// Restores a full checkpoint followed by the deltas written after it, in order.
    pub fn restore_chain(&mut self, full: &[u8], deltas: &[Vec<u8>]) -> Result<()> {
        self.restore(full)?;
        for delta in deltas {
            let env = Envelope::decode(delta)?;
            let targets = self.matching_steps(&env)?;
            for (i, bytes) in targets {
                self.steps[i].restore_delta(bytes)?;
            }
        }
        Ok(())
    }

    /// The steps of this pipeline each entry of `env` belongs to; a step whose configuration
    /// changed since the state was written is refused, an entry of a removed step dropped.
    fn matching_steps<'e>(&self, env: &'e Envelope) -> Result<Vec<(usize, &'e Vec<u8>)>> {
        let mut restored = Vec::new();
        for (name, fingerprint, bytes) in &env.entries {
            let Some(i) = self.steps.iter().position(|s| s.name() == name) else {
                continue;
            };
            if &self.step_fingerprints[i] != fingerprint {
                return Err(CoreError::Checkpoint {
                    problem: format!(
                        "step `{name}` of pipeline `{}` changed since its state was saved, so the state cannot be carried over (hint: rebuild with --full-refresh, or rename the step to start it empty)",
                        self.spec.name
                    ),
                });
            }
            restored.push((i, bytes));
        }
        Ok(restored)
    }

    /// Restores state written by [`Pipeline::checkpoint`]. Each stateful step gets the state
    /// its own, unchanged configuration wrote, so the rest of the pipeline may have evolved; a
    /// step whose configuration changed is refused (its state would mean something else), and
    /// the state of a step that no longer exists is dropped.
    pub fn restore(&mut self, state: &[u8]) -> Result<()> {
        let env = Envelope::decode(state)?;
        let restored = self.matching_steps(&env)?;
        // Validate everything before changing anything.
        for (i, bytes) in restored {
            self.steps[i].restore(bytes)?;
        }
        Ok(())
    }

    fn empty_output(&self) -> Output {
        Output {
            rows: Vec::new(),
            quarantined: RecordBatch::new_empty(self.quarantine_schema.clone()),
            metrics: PipelineMetrics::for_steps(
                &self
                    .steps
                    .iter()
                    .map(|s| s.name().to_string())
                    .zip(self.kinds.iter().copied())
                    .collect::<Vec<_>>(),
            ),
        }
    }

    fn check_input(&self, batch: &RecordBatch) -> Result<()> {
        let got = batch.schema();
        if got.fields().len() != self.input_schema.fields().len() {
            return Err(CoreError::InputSchema {
                problem: format!(
                    "expected columns [{}], got [{}]",
                    describe(&self.input_schema),
                    describe(&got)
                ),
            });
        }
        for (a, b) in self.input_schema.fields().iter().zip(got.fields()) {
            if a.name() != b.name() || a.data_type() != b.data_type() {
                return Err(CoreError::InputSchema {
                    problem: format!(
                        "expected `{}` {}, got `{}` {}",
                        a.name(),
                        type_name(a.data_type()),
                        b.name(),
                        type_name(b.data_type())
                    ),
                });
            }
        }
        Ok(())
    }

    fn run_from(
        &mut self,
        start: usize,
        mut batch: RecordBatch,
        input: Option<&RecordBatch>,
    ) -> Result<Output> {
        let mut out = self.empty_output();
        let mut rejections: Vec<(String, Rejected)> = Vec::new();
        if start == 0 {
            out.metrics.rows_in = batch.num_rows() as u64;
        }
        for i in start..self.steps.len() {
            let step = &mut self.steps[i];
            let rows_in = batch.num_rows() as u64;
            let result = step.process(batch)?;
            let expected = step.output_schema();
            if result.batch.schema().fields() != expected.fields() {
                return Err(CoreError::OutputSchema {
                    step: step.name().to_string(),
                    problem: format!(
                        "expected [{}], got [{}]",
                        describe(&expected),
                        describe(&result.batch.schema())
                    ),
                });
            }
            let m = &mut out.metrics.steps[i];
            m.rows_in += rows_in;
            m.rows_out += result.batch.num_rows() as u64;
            m.dropped += result.dropped;
            out.metrics.dropped += result.dropped;
            if let Some(r) = result.rejected {
                m.quarantined += r.row_ids.len() as u64;
                rejections.push((step.name().to_string(), r));
            }
            out.metrics.record_rules(i, &result.rules);
            batch = result.batch;
        }
        let (rows, rejected) = self.finalize(batch, input)?;
        if let Some(r) = rejected {
            rejections.push(("output".to_string(), r));
        }
        out.quarantined = self.quarantine(rejections, input)?;
        out.metrics.quarantined = out.quarantined.num_rows() as u64;
        out.metrics.rows_out = rows.num_rows() as u64;
        if rows.num_rows() > 0 {
            out.rows.push(rows);
        }
        self.metrics.merge(&out.metrics);
        Ok(out)
    }

    /// Last step's batch → declared output: order, not-null checks, lineage re-attached.
    fn finalize(
        &self,
        batch: RecordBatch,
        input: Option<&RecordBatch>,
    ) -> Result<(RecordBatch, Option<Rejected>)> {
        let mut batch = batch;
        let mut rejected = None;
        let mut missing: Option<arrow::array::BooleanArray> = None;
        for &i in &self.required {
            let col = batch.column(self.final_order[i]);
            if col.null_count() > 0 {
                let nulls = arrow::compute::is_null(col)?;
                missing = Some(match missing {
                    Some(m) => arrow::compute::or(&m, &nulls)?,
                    None => nulls,
                });
            }
        }
        if let Some(mask) = missing {
            let (kept, rej) = crate::step::split_rejected(batch.clone(), &mask, |row| {
                let col = self
                    .required
                    .iter()
                    .find(|&&i| batch.column(self.final_order[i]).is_null(row))
                    .map(|&i| self.output_schema.field(i).name().clone())
                    .unwrap_or_default();
                format!("output column `{col}` is declared not null but is null")
            })?;
            batch = kept;
            rejected = rej;
        }
        let ids = row_ids(&batch)?;
        let mut columns: Vec<ArrayRef> = self
            .final_order
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        // Rows of aggregating steps carry a null row id: they come from no single input row.
        let identity =
            input.is_some_and(|inp| ids.len() == inp.num_rows() && ids.null_count() == 0);
        for &l in &self.lineage {
            columns.push(match input {
                Some(inp) if identity => inp.column(l).clone(),
                Some(inp) => take(inp.column(l).as_ref(), ids, None)?,
                None => new_null_array(self.input_schema.field(l).data_type(), batch.num_rows()),
            });
        }
        Ok((
            RecordBatch::try_new(self.output_schema.clone(), columns)?,
            rejected,
        ))
    }

    /// Rejections of all steps → one quarantine batch in input order.
    fn quarantine(
        &self,
        rejections: Vec<(String, Rejected)>,
        input: Option<&RecordBatch>,
    ) -> Result<RecordBatch> {
        if rejections.is_empty() {
            return Ok(RecordBatch::new_empty(self.quarantine_schema.clone()));
        }
        let ids: Vec<&dyn Array> = rejections
            .iter()
            .map(|(_, r)| &r.row_ids as &dyn Array)
            .collect();
        let reasons: Vec<&dyn Array> = rejections
            .iter()
            .map(|(_, r)| &r.reasons as &dyn Array)
            .collect();
        let steps: Vec<StringArray> = rejections
            .iter()
            .map(|(s, r)| StringArray::from(vec![s.as_str(); r.row_ids.len()]))
            .collect();
        let steps_ref: Vec<&dyn Array> = steps.iter().map(|s| s as &dyn Array).collect();
        let ids = concat(&ids)?;
        let order = sort_to_indices(&ids, None, None)?;
        let ids = take(ids.as_ref(), &order, None)?;
        let ids = ids.as_primitive::<arrow::datatypes::UInt32Type>();
        let reasons = take(concat(&reasons)?.as_ref(), &order, None)?;
        let steps = take(concat(&steps_ref)?.as_ref(), &order, None)?;
        let n = ids.len();
        let raw: ArrayRef = match (input, self.raw_index) {
            (Some(inp), Some(r)) => {
                let raw = take(inp.column(r).as_ref(), ids, None)?;
                arrow::compute::cast(&raw, &DataType::Binary)?
            }
            (Some(inp), None) => self.rows_as_json(inp, ids)?,
            (None, _) => new_null_array(&DataType::Binary, n),
        };
        let mut columns = vec![raw, steps, reasons];
        for &l in &self.lineage {
            columns.push(match input {
                Some(inp) => take(inp.column(l).as_ref(), ids, None)?,
                None => new_null_array(self.input_schema.field(l).data_type(), n),
            });
        }
        Ok(RecordBatch::try_new(
            self.quarantine_schema.clone(),
            columns,
        )?)
    }

    /// Typed input without a raw column: the quarantined rows are kept as JSON text.
    fn rows_as_json(&self, input: &RecordBatch, ids: &UInt32Array) -> Result<ArrayRef> {
        let data = input.project(&self.step_input)?;
        let rows = arrow::compute::take_record_batch(&data, ids)?;
        let mut buf = Vec::new();
        {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
            w.write(&rows)?;
            w.finish()?;
        }
        let lines: Vec<&[u8]> = buf.split(|b| *b == b'\n').take(rows.num_rows()).collect();
        Ok(Arc::new(BinaryArray::from_iter_values(lines)))
    }
}

fn describe(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .filter(|f| f.name() != ROW_ID)
        .map(|f| {
            format!(
                "{} {}{}",
                f.name(),
                type_name(f.data_type()),
                if f.is_nullable() { "" } else { " not null" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a partition transform (`day(ts)`, `hour(ts)`, `month(ts)`, `year(ts)`, `identity(c)` or
/// a bare column, `bucket(16, c)`, `truncate(4, c)`) against the declared output.
fn validate_partition(text: &str, declared: &Schema) -> std::result::Result<(), String> {
    let t = text.trim();
    let (func, args) = match t.find('(') {
        Some(open) if t.ends_with(')') => (t[..open].trim(), t[open + 1..t.len() - 1].trim()),
        _ => ("identity", t),
    };
    let column = args.rsplit(',').next().unwrap_or_default().trim();
    let field = declared
        .field_with_name(column)
        .map_err(|_| format!("`{text}`: `{column}` is not a declared output column"))?;
    match func {
        "year" | "month" | "day" | "hour" => {
            if !matches!(
                field.data_type(),
                DataType::Timestamp(..) | DataType::Date32
            ) {
                return Err(format!(
                    "`{text}`: {func}() needs a timestamp or date column"
                ));
            }
        }
        "bucket" | "truncate" => {
            let n = args.split(',').next().unwrap_or_default().trim();
            if n.parse::<u32>().map_or(true, |n| n == 0) {
                return Err(format!(
                    "`{text}`: {func} needs a positive width first, e.g. {func}(16, {column})"
                ));
            }
        }
        "identity" => {}
        other => {
            return Err(format!(
                "`{text}`: unknown transform `{other}` (year, month, day, hour, bucket, truncate, identity)"
            ));
        }
    }
    Ok(())
}

/// Step names: given, or the type (suffixed with the index when the type repeats); unique
/// either way.
pub fn step_names(spec: &PipelineSpec) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::with_capacity(spec.steps.len());
    for (i, s) in spec.steps.iter().enumerate() {
        let name = match s.given_name() {
            Some(n) => {
                if names.iter().any(|m| m == n) {
                    return Err(CoreError::spec(
                        location(i, s.type_name(), n),
                        "name",
                        format!("step name `{n}` is used twice"),
                    ));
                }
                n.to_string()
            }
            None if names.iter().any(|m| m == s.type_name()) => {
                format!("{}_{i}", s.type_name())
            }
            None => s.type_name().to_string(),
        };
        names.push(name);
    }
    Ok(names)
}
