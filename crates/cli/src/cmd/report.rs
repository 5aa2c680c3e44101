//! `strata report run <report.yaml> --config serve.yaml`: renders a report of the semantic
//! layer's metrics (strata_serving::report) to a self-contained HTML file and one CSV per
//! section, in `--out`.

use std::path::PathBuf;

use strata_serving::report::{ReportSpec, render, write_to_dir};
use strata_serving::{AnalyticsApi, ServeConfig, ServingError};

use crate::Failure;

/// `strata report …`.
#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Render a report to HTML + CSV.
    Run(Args),
}

/// Flags of `report run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The report (YAML: name, title, from / to, sections; see docs/serving.md).
    pub report: PathBuf,
    /// The serve config whose metrics the report uses (its keys are not needed).
    #[arg(long, env = "STRATA_ANALYTICS_CONFIG", hide_env_values = true)]
    pub config: PathBuf,
    /// Lake root (overrides the config's `lake`).
    #[arg(long, env = "STRATA_LAKE", hide_env_values = true)]
    pub lake: Option<String>,
    /// Folder for `<name>.html` and its CSVs.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
}

fn failure(e: ServingError) -> Failure {
    match e {
        ServingError::Config { .. } | ServingError::NotFound { .. } => Failure::config(e),
        _ => Failure::runtime(e),
    }
}

/// Runs a report command.
pub async fn run(command: &ReportCommand) -> Result<(), Failure> {
    let ReportCommand::Run(args) = command;
    let spec = ReportSpec::from_file(&args.report).map_err(failure)?;
    let mut config = ServeConfig::from_file(&args.config).map_err(failure)?;
    if let Some(l) = &args.lake {
        config.lake = l.clone();
    }
    // In process: no HTTP, so no keys; no schedule either.
    config.auth = strata_serving::auth::AuthConfig {
        open: true,
        keys: Vec::new(),
    };
    config.reports.clear();
    let api = AnalyticsApi::open(config).await.map_err(failure)?;
    let now = strata_runtime::catalog::rfc3339_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    );
    let report = render(&api, &spec, &now).await.map_err(failure)?;
    let html = write_to_dir(&report, &args.out).map_err(failure)?;
    println!(
        "report {}: {} sections ({} rows) → {} and {} CSV files",
        spec.name,
        report.rows.len(),
        report.rows.iter().sum::<usize>(),
        html.display(),
        report.csv.len()
    );
    Ok(())
}
