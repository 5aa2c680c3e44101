//! `strata lake cool --config cooling.yaml [--dry-run] [--lifecycle-out rules.json]`: moves
//! bronze, silver and gold partitions past their policy (days since the last write and since
//! the last read by Strata) to a cheaper S3 storage class, in place (see
//! `strata_layers::cooling`).

use std::path::PathBuf;

use anyhow::anyhow;
use strata_layers::cooling::{CoolingPolicy, apply, lifecycle_rules, plan};
use strata_layers::lake::Lake;

use crate::Failure;

/// `lake` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LakeCommand {
    /// Move old, unread partitions to a colder storage class (S3 lakes).
    Cool(CoolArgs),
}

/// Flags of `lake cool`.
#[derive(Debug, clap::Args)]
pub struct CoolArgs {
    /// The cooling policy (YAML: `prices`, `rules` per layer).
    #[arg(long)]
    pub config: PathBuf,
    /// Lake root (`s3://bucket/prefix`; a local lake has no storage classes).
    #[arg(
        long,
        env = "STRATA_LAKE",
        hide_env_values = true,
        default_value = "lake"
    )]
    pub lake: String,
    /// List what would move, the bytes and the monthly saving; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the equivalent S3 lifecycle configuration (JSON) to this file.
    #[arg(long)]
    pub lifecycle_out: Option<PathBuf>,
    /// Plan as of this day (YYYY-MM-DD) instead of today: what would move then.
    #[arg(long)]
    pub as_of: Option<String>,
}

/// Runs a `lake` subcommand.
pub async fn run(command: &LakeCommand) -> Result<(), Failure> {
    let LakeCommand::Cool(args) = command;
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| Failure::config(anyhow!("{}: {e}", args.config.display())))?;
    let policy = CoolingPolicy::from_yaml(&text)
        .map_err(|e| Failure::config(anyhow!("{}: {e}", args.config.display())))?;
    if let Some(out) = &args.lifecycle_out {
        let prefix = args
            .lake
            .strip_prefix("s3://")
            .and_then(|r| r.split_once('/'))
            .map_or("", |(_, p)| p);
        let json = serde_json::to_string_pretty(&lifecycle_rules(&policy, prefix))
            .map_err(Failure::runtime)?;
        std::fs::write(out, json)
            .map_err(|e| Failure::config(anyhow!("{}: {e}", out.display())))?;
        println!("S3 lifecycle rules written to {}", out.display());
    }
    let now_ms = match &args.as_of {
        Some(day) => strata_layers::bronze::BronzeDate::parse(day)
            .map_err(Failure::config)?
            .epoch_millis(),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(Failure::runtime)?
            .as_millis() as i64,
    };
    let lake = Lake::open(&args.lake).map_err(Failure::config)?;
    let moves = plan(&lake, &policy, now_ms)
        .await
        .map_err(Failure::runtime)?;
    let (bytes, saving): (u64, f64) = moves
        .iter()
        .fold((0, 0.0), |(b, s), m| (b + m.bytes, s + m.monthly_saving));
    for m in &moves {
        let read = m
            .read_days_ago
            .map_or("never read".to_string(), |d| format!("read {d} days ago"));
        println!(
            "{} {} → {}: {} objects, {} bytes, written {} days ago, {read}, saves ${:.4}/month",
            if args.dry_run { "would move" } else { "moving" },
            m.partition,
            m.storage_class,
            m.objects.len(),
            m.bytes,
            m.written_days_ago,
            m.monthly_saving
        );
    }
    if !args.dry_run {
        apply(&lake, &moves).await.map_err(Failure::runtime)?;
    }
    println!(
        "{} partitions, {bytes} bytes{}; estimated saving ${saving:.4}/month",
        moves.len(),
        if args.dry_run {
            " would move (dry run)"
        } else {
            " moved"
        }
    );
    Ok(())
}
