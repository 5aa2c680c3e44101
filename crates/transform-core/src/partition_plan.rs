//! Running one pipeline on many workers (Spark executors, one task per partition) with the same
//! result as one process: the plan for where the data must be repartitioned.
//!
//! Stateless steps give the same rows whatever the partitioning. A stateful step (`dedup`,
//! `window_aggregate`) keeps state per key, so every row of one key must reach the same worker,
//! in the order one process would see it. Its keys are usually *computed* by earlier steps
//! (`parse_json` extracts `device_id` and `seq` from raw bytes), so the pipeline is cut in two:
//! a **prefix** (the steps before the first stateful one, run wherever the data is) and a
//! **suffix** (the stateful step and everything after it, run after a hash repartition on the
//! [`PartitionPlan::keys`], in input order within each partition).
//!
//! Both halves keep the whole pipeline's step names, so quarantine rows name the same step, and
//! the raw record travels through the prefix as the lineage column [`CARRIED_RAW`], so a row the
//! suffix rejects still carries its original bytes in `_raw`.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use indexmap::IndexMap;

use crate::error::{CoreError, Result};
use crate::lineage::RAW;
use crate::pipeline::{BuildContext, Pipeline, step_names};
use crate::spec::{InputSpec, OutputSpec, PipelineSpec, StepSpec};
use crate::types::type_name;

/// The lineage column that carries `_raw` through the prefix: copy `_raw` into it before the
/// prefix, rename it back to `_raw` before the suffix (and drop it from the prefix's
/// quarantine, whose `_raw` is already the original).
pub const CARRIED_RAW: &str = "_strata_carried_raw";

/// Where a pipeline must be cut and repartitioned to run on many workers.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionPlan {
    /// The steps before the first stateful step, with an output of every column they produce;
    /// `None` when the first step is stateful or there is no stateful step.
    pub prefix: Option<PipelineSpec>,
    /// The rest of the pipeline (the whole of it when there is no prefix).
    pub suffix: PipelineSpec,
    /// The columns to hash-partition by before the suffix: the stateful step's keys (`dedup`'s
    /// `keys`, `window_aggregate`'s `group_by`). Empty: any partitioning gives the same result.
    pub keys: Vec<String>,
    /// The step whose state needs the repartition (named in docs and errors).
    pub stateful_step: Option<String>,
}

impl PartitionPlan {
    /// Plans `spec` for the given input schema (built once to learn each step's output).
    ///
    /// A spec with more than one stateful step is refused: two steps may need two different
    /// partitionings.
    pub fn new(spec: &PipelineSpec, input_schema: SchemaRef) -> Result<Self> {
        let names = step_names(spec)?;
        let stateful: Vec<usize> = spec
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_stateful())
            .map(|(i, _)| i)
            .collect();
        let Some(&cut) = stateful.first() else {
            return Ok(PartitionPlan {
                prefix: None,
                suffix: spec.clone(),
                keys: Vec::new(),
                stateful_step: None,
            });
        };
        if stateful.len() > 1 {
            return Err(CoreError::spec(
                format!("pipeline `{}`", spec.name),
                "steps",
                format!(
                    "steps {} keep state: a partitioned run supports one stateful step",
                    stateful
                        .iter()
                        .map(|&i| format!("`{}`", names[i]))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            )
            .with_hint("split the pipeline in two, one stateful step in each"));
        }
        let keys = match &spec.steps[cut] {
            StepSpec::Dedup(d) => d.keys.clone(),
            StepSpec::WindowAggregate(w) => w.group_by.clone(),
            _ => Vec::new(),
        };
        let mut named = spec.clone();
        for (step, name) in named.steps.iter_mut().zip(&names) {
            step.set_name(name.clone());
        }
        if cut == 0 {
            return Ok(PartitionPlan {
                prefix: None,
                suffix: named,
                keys,
                stateful_step: Some(names[cut].clone()),
            });
        }
        let whole = Pipeline::build(spec, input_schema, &BuildContext::default())?;
        let schemas = whole.step_schemas();
        let (_, before_cut) = &schemas[cut - 1];
        let mut columns = IndexMap::new();
        for field in before_cut.fields() {
            let mut text = type_name(field.data_type());
            if !field.is_nullable() {
                text.push_str(" not null");
            }
            columns.insert(field.name().clone(), text);
        }
        let suffix_steps = named.steps.split_off(cut);
        let prefix = PipelineSpec {
            name: spec.name.clone(),
            description: None,
            owner: None,
            tags: Vec::new(),
            input: spec.input.clone(),
            steps: named.steps,
            output: OutputSpec {
                schema: columns,
                ..OutputSpec::default()
            },
        };
        let suffix = PipelineSpec {
            input: InputSpec::default(),
            steps: suffix_steps,
            ..spec.clone()
        };
        Ok(PartitionPlan {
            prefix: Some(prefix),
            suffix,
            keys,
            stateful_step: Some(names[cut].clone()),
        })
    }
}

/// The prefix's input: `batch` plus [`CARRIED_RAW`], a copy (by reference, no bytes copied) of
/// its `_raw` column. A batch without `_raw` is returned as it is.
pub fn prefix_input(batch: &RecordBatch) -> Result<RecordBatch> {
    let Ok(raw) = batch.schema().index_of(RAW) else {
        return Ok(batch.clone());
    };
    let schema = batch.schema();
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let raw_field = schema.field(raw);
    fields.push(Arc::new(Field::new(
        CARRIED_RAW,
        raw_field.data_type().clone(),
        true,
    )));
    let mut columns = batch.columns().to_vec();
    columns.push(batch.column(raw).clone());
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The suffix's input: a prefix output batch with [`CARRIED_RAW`] renamed back to `_raw`.
pub fn suffix_input(prefix_rows: &RecordBatch) -> Result<RecordBatch> {
    rename_or_drop(prefix_rows, Some(RAW))
}

/// A prefix quarantine batch without [`CARRIED_RAW`] (its `_raw` is already the original).
pub fn prefix_quarantine(quarantined: &RecordBatch) -> Result<RecordBatch> {
    rename_or_drop(quarantined, None)
}

fn rename_or_drop(batch: &RecordBatch, rename_to: Option<&str>) -> Result<RecordBatch> {
    let schema = batch.schema();
    let Ok(carried) = schema.index_of(CARRIED_RAW) else {
        return Ok(batch.clone());
    };
    let mut fields: Vec<FieldRef> = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        if i == carried {
            match rename_to {
                Some(name) => fields.push(Arc::new(field.as_ref().clone().with_name(name))),
                None => continue,
            }
        } else {
            fields.push(field.clone());
        }
        columns.push(batch.column(i).clone());
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
