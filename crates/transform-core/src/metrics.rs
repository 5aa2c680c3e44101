//! Counters per step and per pipeline. Returned with every `process` / `finish` (for that call)
//! and accumulated by the pipeline (since build or restore); drivers turn them into metrics and
//! summaries.

use serde::Serialize;

use crate::step::RuleCount;

/// Counters of one step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StepMetrics {
    /// Step name.
    pub step: String,
    /// Step type (`parse_json`, `dedup`, …).
    pub kind: String,
    /// Rows handed to the step.
    pub rows_in: u64,
    /// Rows it passed on.
    pub rows_out: u64,
    /// Rows it sent to quarantine.
    pub quarantined: u64,
    /// Rows it dropped on purpose (filter, `drop` rules, duplicates).
    pub dropped: u64,
    /// Expectation counts, one per rule (only for `expect`).
    pub rules: Vec<RuleMetrics>,
}

/// Pass / fail counts of one expectation rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleMetrics {
    /// Rule name.
    pub rule: String,
    /// Rows where the check was TRUE.
    pub passed: u64,
    /// Rows where it was not.
    pub failed: u64,
}

/// Counters of a whole pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PipelineMetrics {
    /// Input rows.
    pub rows_in: u64,
    /// Output rows.
    pub rows_out: u64,
    /// Rows in quarantine.
    pub quarantined: u64,
    /// Rows dropped on purpose by any step.
    pub dropped: u64,
    /// Per step, in pipeline order.
    pub steps: Vec<StepMetrics>,
}

impl PipelineMetrics {
    pub(crate) fn for_steps(steps: &[(String, &'static str)]) -> Self {
        PipelineMetrics {
            steps: steps
                .iter()
                .map(|(name, kind)| StepMetrics {
                    step: name.clone(),
                    kind: kind.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    pub(crate) fn record_rules(&mut self, step: usize, counts: &[RuleCount]) {
        let rules = &mut self.steps[step].rules;
        for c in counts {
            match rules.iter_mut().find(|r| r.rule == c.rule) {
                Some(r) => {
                    r.passed += c.passed;
                    r.failed += c.failed;
                }
                None => rules.push(RuleMetrics {
                    rule: c.rule.clone(),
                    passed: c.passed,
                    failed: c.failed,
                }),
            }
        }
    }

    /// Adds another set of counters of the same pipeline into this one.
    pub fn merge(&mut self, other: &PipelineMetrics) {
        self.rows_in += other.rows_in;
        self.rows_out += other.rows_out;
        self.quarantined += other.quarantined;
        self.dropped += other.dropped;
        if self.steps.is_empty() {
            self.steps = other.steps.clone();
            return;
        }
        for (mine, theirs) in self.steps.iter_mut().zip(&other.steps) {
            mine.rows_in += theirs.rows_in;
            mine.rows_out += theirs.rows_out;
            mine.quarantined += theirs.quarantined;
            mine.dropped += theirs.dropped;
            for r in &theirs.rules {
                match mine.rules.iter_mut().find(|m| m.rule == r.rule) {
                    Some(m) => {
                        m.passed += r.passed;
                        m.failed += r.failed;
                    }
                    None => mine.rules.push(r.clone()),
                }
            }
        }
    }

    /// Rows dropped as duplicates by `dedup` steps.
    pub fn duplicates(&self) -> u64 {
        self.steps
            .iter()
            .filter(|s| s.kind == "dedup")
            .map(|s| s.dropped)
            .sum()
    }
}
