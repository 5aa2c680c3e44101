//! OpenLineage (spec 2-0-2) run events for Strata's jobs: START, then COMPLETE or FAIL, with
//! the datasets read and written and the facets a catalog (Marquez, DataHub) shows.
//!
//! - [`event`]: the event and facet JSON, with dataset names from the OpenLineage naming spec;
//! - [`transport`]: where events go (an NDJSON file, or the HTTP transport's
//!   `POST /api/v1/lineage`), sent in the background through a bounded buffer: a slow or down
//!   endpoint never blocks or fails a job; what cannot be sent is counted as dropped;
//! - [`run_hooks`]: [`crate::DriverHooks`] that emit a pipeline run's events;
//! - [`models`]: an observer of `models run` that emits each model's run.

pub mod event;
pub mod models;
pub mod run_hooks;
pub mod transport;

pub use event::{
    Assertion, Dataset, EventType, InputField, JobRun, SchemaField, dataset_at,
    dataset_for_location, kafka_dataset, url_path,
};
pub use models::ModelLineage;
pub use run_hooks::{EpochLineageHooks, LineageHooks};
pub use transport::{LineageEmitter, LineageStats};
