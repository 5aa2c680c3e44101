//! `strata validate` / `strata plan`: build the pipeline against the file-input schema and
//! report every problem before any data flows.

use std::path::PathBuf;

use strata_core::lineage::file_input_schema;
use strata_core::{BuildContext, Pipeline};

use crate::Failure;

/// Flags of `validate` and `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline spec (YAML or JSON).
    #[arg(long, env = "STRATA_PIPELINE")]
    pub pipeline: PathBuf,
}

/// Validates; with `plan`, prints the step graph.
pub fn run(args: &Args, plan: bool) -> Result<(), Failure> {
    let spec = super::load_spec(&args.pipeline)?;
    let pipeline = Pipeline::build(&spec, file_input_schema(), &BuildContext::default())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", args.pipeline.display())))?;
    if plan {
        print!("{}", pipeline.plan());
    } else {
        println!(
            "{}: pipeline `{}` is valid ({} steps)",
            args.pipeline.display(),
            spec.name,
            spec.steps.len()
        );
    }
    Ok(())
}
