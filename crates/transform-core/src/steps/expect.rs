//! `expect`: data-quality rules as SQL booleans. A row passes a rule only when the check is TRUE.
//! Per rule: `warn` counts, `drop` removes the row (counted), `quarantine` sends it to quarantine
//! with the rule as reason, `fail` stops the run naming the rule and the first failing row.
//! Every rule is evaluated on the step's input, so counts do not depend on rule order.

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::{not, or};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::SessionContext;

use crate::error::{CoreError, Result};
use crate::expr::SqlExpr;
use crate::spec::{ExpectSpec, RuleAction};
use crate::step::{RuleCount, Step, StepOutput, split_rejected};

struct Rule {
    name: String,
    check: SqlExpr,
    action: RuleAction,
}

/// The built `expect` step.
pub struct Expect {
    name: String,
    rules: Vec<Rule>,
    output: SchemaRef,
}

impl Expect {
    /// Compiles each rule; names must be unique and checks boolean.
    pub fn build(
        spec: &ExpectSpec,
        name: &str,
        loc: &str,
        input: &SchemaRef,
        ctx: &SessionContext,
    ) -> Result<Self> {
        if spec.rules.is_empty() {
            return Err(CoreError::spec(loc, "rules", "no rules given"));
        }
        let mut rules = Vec::with_capacity(spec.rules.len());
        for (i, r) in spec.rules.iter().enumerate() {
            let field = format!("rules[{i}].check");
            if spec.rules[..i].iter().any(|o| o.name == r.name) {
                return Err(CoreError::spec(
                    loc,
                    format!("rules[{i}].name"),
                    format!("rule `{}` is defined twice", r.name),
                ));
            }
            let check = SqlExpr::compile(ctx, &r.check, input)
                .map_err(|e| CoreError::spec(loc, &field, e))?;
            if check.data_type != DataType::Boolean {
                return Err(CoreError::spec(
                    loc,
                    &field,
                    format!("`{}` is not a boolean expression", r.check),
                ));
            }
            rules.push(Rule {
                name: r.name.clone(),
                check,
                action: r.action,
            });
        }
        Ok(Expect {
            name: name.to_string(),
            rules,
            output: input.clone(),
        })
    }

    fn first_row_json(batch: &RecordBatch, failed: &BooleanArray) -> String {
        let Some(row) = (0..failed.len()).find(|&i| failed.value(i)) else {
            return String::new();
        };
        let one = batch.slice(row, 1);
        let mut buf = Vec::new();
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        if w.write(&one).and_then(|_| w.finish()).is_err() {
            return format!("row {row}");
        }
        String::from_utf8_lossy(&buf).trim().to_string()
    }
}

impl Step for Expect {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        let mut counts = Vec::with_capacity(self.rules.len());
        let mut quarantine: Option<BooleanArray> = None;
        let mut quarantine_masks: Vec<(usize, BooleanArray)> = Vec::new();
        let mut drop: Option<BooleanArray> = None;
        for (i, rule) in self.rules.iter().enumerate() {
            let value = rule
                .check
                .evaluate(&batch)
                .map_err(|message| CoreError::StepFailed {
                    step: self.name.clone(),
                    message: format!("rule `{}`: {message}", rule.name),
                    hint: None,
                })?;
            let passed = crate::step::null_as_false(value.as_boolean());
            let failed = not(&passed)?;
            let n_failed = failed.true_count();
            counts.push(RuleCount {
                rule: rule.name.clone(),
                passed: (batch.num_rows() - n_failed) as u64,
                failed: n_failed as u64,
            });
            if n_failed == 0 {
                continue;
            }
            match rule.action {
                RuleAction::Warn => {}
                RuleAction::Fail => {
                    return Err(CoreError::ExpectationFailed {
                        step: self.name.clone(),
                        rule: rule.name.clone(),
                        check: rule.check.sql.clone(),
                        failed_rows: n_failed,
                        first_row: Self::first_row_json(&batch, &failed),
                    });
                }
                RuleAction::Drop => drop = Some(merge(drop, &failed)?),
                RuleAction::Quarantine => {
                    quarantine = Some(merge(quarantine, &failed)?);
                    quarantine_masks.push((i, failed));
                }
            }
        }
        let mut batch = batch;
        let mut rejected = None;
        // Quarantine wins over drop: a row that breaks a quarantine rule is kept as evidence.
        if let Some(q) = &quarantine {
            let (kept, rej) = split_rejected(batch, q, |row| {
                let (i, _) = quarantine_masks
                    .iter()
                    .find(|(_, m)| m.value(row))
                    .map(|(i, m)| (*i, m))
                    .unwrap_or((0, q));
                format!(
                    "expectation `{}` failed: {}",
                    self.rules[i].name, self.rules[i].check.sql
                )
            })?;
            rejected = rej;
            batch = kept;
            if let Some(d) = drop.take() {
                drop = Some(arrow::compute::filter(&d, &not(q)?)?.as_boolean().clone());
            }
        }
        let mut dropped = 0;
        if let Some(d) = drop {
            dropped = d.true_count() as u64;
            batch = arrow::compute::filter_record_batch(&batch, &not(&d)?)?;
        }
        Ok(StepOutput {
            batch,
            rejected,
            dropped,
            rules: counts,
        })
    }
}

fn merge(acc: Option<BooleanArray>, mask: &BooleanArray) -> Result<BooleanArray> {
    Ok(match acc {
        Some(a) => or(&a, mask)?,
        None => mask.clone(),
    })
}
