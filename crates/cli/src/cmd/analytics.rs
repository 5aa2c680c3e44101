//! `strata serve analytics --config serve.yaml`: the analytics API ([`strata_serving`]) over
//! the lake's silver and gold tables. Runs until SIGTERM / Ctrl-C, then finishes the requests in
//! flight.

use std::path::PathBuf;

use strata_serving::{AnalyticsApi, ServeConfig, ServingError};

use crate::Failure;

/// Flags of `serve analytics`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The API config (YAML; see docs/serving.md).
    #[arg(long, env = "STRATA_ANALYTICS_CONFIG", hide_env_values = true)]
    pub config: PathBuf,
    /// Address to listen on (overrides `listen`).
    #[arg(long, env = "STRATA_ANALYTICS_LISTEN", hide_env_values = true)]
    pub listen: Option<String>,
    /// Lake root (overrides `lake`).
    #[arg(long, env = "STRATA_LAKE", hide_env_values = true)]
    pub lake: Option<String>,
    /// Catalog database (overrides `catalog`).
    #[arg(long, env = "STRATA_CATALOG", hide_env_values = true)]
    pub catalog: Option<String>,
}

fn failure(e: ServingError) -> Failure {
    match e {
        ServingError::Config { .. } => Failure::config(e),
        _ => Failure::runtime(e),
    }
}

/// Runs the API until a shutdown signal.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let mut config = ServeConfig::from_file(&args.config).map_err(failure)?;
    if let Some(l) = &args.listen {
        config.listen = l.clone();
    }
    if let Some(l) = &args.lake {
        config.lake = l.clone();
    }
    if let Some(c) = &args.catalog {
        config.catalog = Some(c.clone());
    }
    let listen = config.listen.clone();
    let described = strata_serving::server::describe(&config);
    let api = AnalyticsApi::open(config).await.map_err(failure)?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| Failure::config(anyhow::anyhow!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(Failure::runtime)?;
    eprintln!("analytics API on http://{addr} ({described})");
    strata_serving::serve(api, listener, super::stream::shutdown_signal())
        .await
        .map_err(Failure::runtime)
}
