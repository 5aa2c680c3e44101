//! `strata validate` / `strata plan`: build the pipeline against the input it declares
//! (`input:`; raw records by default) and report every problem before any data flows.

use std::path::PathBuf;

use strata_core::{BuildContext, Pipeline};

use crate::Failure;

/// Flags of `validate` and `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline spec (YAML or JSON): `strata validate pipelines/iot.yaml`.
    #[arg(value_name = "PIPELINE", required_unless_present = "pipeline")]
    pub file: Option<PathBuf>,
    /// The same, as a flag (or STRATA_PIPELINE).
    #[arg(
        long,
        env = "STRATA_PIPELINE",
        hide_env_values = true,
        conflicts_with = "file"
    )]
    pub pipeline: Option<PathBuf>,
}

/// Validates; with `plan`, prints the step graph.
pub fn run(args: &Args, plan: bool) -> Result<(), Failure> {
    let Some(path) = args.file.as_ref().or(args.pipeline.as_ref()) else {
        return Err(Failure::config(anyhow::anyhow!(
            "name the pipeline: strata validate PIPELINE.yaml"
        )));
    };
    let spec = super::load_spec(path)?;
    let input = spec
        .input_schema()
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", path.display())))?;
    let pipeline = Pipeline::build(&spec, input, &BuildContext::default())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", path.display())))?;
    // Validation knows the sink's limits too: what `batch` / `stream silver` could not store is
    // refused here, not after the data has been read.
    strata_layers::silver::check_silver_schema(&pipeline.output_schema())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", path.display())))?;
    if plan {
        print!("{}", pipeline.plan());
    } else {
        println!(
            "{}: pipeline `{}` is valid ({} steps)",
            path.display(),
            spec.name,
            spec.steps.len()
        );
    }
    Ok(())
}
