//! `strata bronze put-media`: an image, audio, video or PDF file into bronze, content-addressed
//! (`bronze/source=<s>/date=<d>/media/<sha256>.<ext>`), and its metadata record into the bronze
//! source `<s>.media`, where `pipelines/media.yaml` takes it to silver. The type is sniffed
//! from the bytes; the source's size limit and allowed types are flags (see
//! `strata_layers::bronze::MediaPolicy`).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use sha2::{Digest, Sha256};
use strata_layers::bronze::{BronzeDate, BronzeWriter, MediaPolicy, PutOutcome};
use strata_layers::lake::Lake;

use crate::Failure;

/// Flags of `bronze put-media`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lake root (local path, file:// or s3://bucket/prefix).
    #[arg(
        long,
        env = "STRATA_LAKE",
        hide_env_values = true,
        default_value = "lake"
    )]
    pub lake: String,
    /// Source name (the `source=` partition); the metadata goes to `<source>.media`.
    #[arg(long)]
    pub source: String,
    /// The entity the file belongs to (a card id, a post id, a device id).
    #[arg(long)]
    pub entity_id: String,
    /// The file.
    #[arg(long)]
    pub file: PathBuf,
    /// Date partition YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    pub date: Option<String>,
    /// When it was captured, RFC 3339 (default: now).
    #[arg(long)]
    pub captured_at: Option<String>,
    /// Largest file the source accepts, in MB.
    #[arg(long, default_value_t = 50)]
    pub max_mb: u64,
    /// Allowed content types, comma separated (`image/*,audio/wav`); default: all recognised.
    #[arg(long, value_delimiter = ',')]
    pub allow: Vec<String>,
}

/// Stores the file and its record; prints the record as JSON.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let now_micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Failure::runtime)?
        .as_micros() as i64;
    let date = match &args.date {
        Some(d) => BronzeDate::parse(d).map_err(Failure::config)?,
        None => BronzeDate::from_epoch_micros(now_micros),
    };
    let captured_at = match &args.captured_at {
        Some(t) => t.clone(),
        None => strata_core::sample::iso_millis(now_micros / 1000),
    };
    let policy = MediaPolicy {
        max_bytes: args.max_mb.saturating_mul(1 << 20),
        allow: args.allow.clone(),
    };
    // The limit is checked on the file's size before it is read: a huge file is refused
    // without being loaded into memory.
    let unreadable = |e: std::io::Error| Failure::config(anyhow!("{}: {e}", args.file.display()));
    let size = std::fs::metadata(&args.file).map_err(unreadable)?.len();
    if size > policy.max_bytes {
        return Err(Failure::config(anyhow!(
            "{}: media for source `{}` refused: {size} bytes is over the source's limit of {} bytes",
            args.file.display(),
            args.source,
            policy.max_bytes
        )));
    }
    let bytes = std::fs::read(&args.file).map_err(unreadable)?;
    let writer = BronzeWriter::new(Lake::open(&args.lake).map_err(Failure::config)?);
    let (record, outcome) = writer
        .put_media(
            &args.source,
            date,
            bytes.into(),
            &policy,
            &args.entity_id,
            &captured_at,
        )
        .await
        .map_err(|e| match e {
            // The file's content is what the policy refuses; anything else is the lake.
            strata_layers::error::LayersError::MediaRefused { .. } => {
                Failure::config(anyhow!("{}: {e}", args.file.display()))
            }
            other => Failure::runtime(other),
        })?;
    let line = serde_json::to_string(&record).map_err(Failure::runtime)?;
    // One record object per (blob, entity): the same file for the same entity is stored once.
    let entity = hex::encode(&Sha256::digest(args.entity_id.as_bytes())[..8]);
    let stem = format!("media-{}-{entity}", &record.sha256[..16]);
    let meta = writer
        .put_ndjson(
            &format!("{}.media", args.source),
            date,
            &stem,
            &[line.as_bytes()],
        )
        .await
        .map_err(Failure::runtime)?;
    let verb = |o: &PutOutcome| match o {
        PutOutcome::Created { .. } => "stored",
        PutOutcome::AlreadyPresent { .. } => "already stored",
    };
    eprintln!(
        "{} {} ({}, {} bytes); record {}",
        verb(&outcome),
        record.uri,
        record.content_type,
        record.bytes,
        verb(&meta)
    );
    println!("{line}");
    Ok(())
}
