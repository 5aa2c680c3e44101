//! Gold: SQL models over silver (and other models), run on DataFusion and written as Iceberg
//! tables in the `gold` namespace.
//!
//! - [`Model`]: one `.sql` file with a YAML header in its leading `--` comments, and an
//!   optional YAML beside it with audits and unit tests;
//! - [`ModelGraph`]: the models' DAG from the tables their SQL reads, in waves;
//! - [`plan`] / [`run`]: what would run and why (new, changed SQL, changed inputs), then each
//!   model computed, staged, audited ([`audit`]) and published (write-audit-publish);
//!   incremental models recompute only their interval or keys ([`incremental`]);
//! - [`run_unit_test`]: a model's unit tests, in memory;
//! - [`column_lineage`]: which input columns each output column comes from.

pub mod audit;
mod dag;
mod docs;
pub mod incremental;
mod lineage;
mod model;
mod run;
mod unit_test;

pub use audit::{Audit, AuditCheck, AuditOutcome, Severity};
pub use dag::ModelGraph;
pub use docs::{ModelFacts, docs_html, model_facts};
pub use lineage::{ColumnLineage, column_lineage};
pub use model::{GOLD, Materialization, Model, ModelHeader, ModelKind, ModelSidecar};
pub use run::{
    FINGERPRINT_KEY, INPUTS_KEY, ModelObserver, ModelRun, ModelStatus, NoObserver, PlannedModel,
    RunOptions, RunReport, STAGE_BRANCH, audit_published, plan, run, run_observed,
};
pub use unit_test::{Fixture, UnitTest, UnitTestOutcome, run_unit_test};
