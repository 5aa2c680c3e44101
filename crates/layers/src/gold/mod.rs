//! Gold: SQL models over silver (and other models), run on DataFusion and written as Iceberg
//! tables in the `gold` namespace.
//!
//! - [`Model`]: one `.sql` file with a YAML header in its leading `--` comments;
//! - [`ModelGraph`]: the models' DAG from the tables their SQL reads, in waves;
//! - [`plan`] / [`run`]: what would run and why (new, changed SQL, changed inputs), then the
//!   recomputation of each, replacing its gold table in one overwrite commit.

mod dag;
mod model;
mod run;

pub use dag::ModelGraph;
pub use model::{GOLD, Materialization, Model, ModelHeader, ModelKind};
pub use run::{FINGERPRINT_KEY, INPUTS_KEY, ModelRun, PlannedModel, plan, run};
