//! One module per `strata` subcommand.

pub mod airflow;
pub mod analytics;
pub mod batch;
pub mod bronze;
pub mod bronze_media;
pub mod catalog;
pub mod decrypt;
pub mod demo;
pub mod generate;
pub mod http_poll;
pub mod ingest;
pub mod lake;
pub mod maintain;
pub mod metrics_args;
pub mod models;
pub mod mysql_cdc;
pub mod progress;
pub mod registry;
pub mod report;
pub mod sql;
pub mod stream;
pub mod stream_bronze;
pub mod stream_log;
pub mod stream_silver;
pub mod transform;
pub mod validate;
pub mod webhooks;

use std::path::Path;

use strata_core::PipelineSpec;

use crate::Failure;

/// Reads a pipeline spec (YAML, or JSON by extension).
pub fn load_spec(path: &Path) -> Result<PipelineSpec, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::config(anyhow::anyhow!(
            "cannot read pipeline `{}`: {e}",
            path.display()
        ))
    })?;
    let spec = if path.extension().is_some_and(|e| e == "json") {
        PipelineSpec::from_json(&text)
    } else {
        PipelineSpec::from_yaml(&text)
    };
    spec.map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", path.display())))
}
