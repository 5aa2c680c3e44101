//! `strata generate iot`: realistic IoT events with faults, as NDJSON (for demos and benches).

use std::io::Write;
use std::path::PathBuf;

use strata_core::sample::{IotFaults, iot_events};

use crate::Failure;

/// Flags of `generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to generate (only `iot` today).
    #[arg(value_parser = ["iot"])]
    pub kind: String,
    /// Number of events.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Output file (`.gz` / `.zst` are compressed).
    #[arg(long)]
    pub out: PathBuf,
    /// Random seed (same seed, same file).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of lines that are not JSON objects.
    #[arg(long, default_value_t = 0.01)]
    pub malformed: f64,
    /// Fraction of events with a bad value.
    #[arg(long, default_value_t = 0.005)]
    pub invalid: f64,
    /// Fraction of exact duplicates.
    #[arg(long, default_value_t = 0.01)]
    pub duplicates: f64,
    /// Epoch milliseconds of the first event.
    #[arg(long, default_value_t = 1_763_646_312_000)]
    pub start_ms: i64,
}

/// Writes the events.
pub fn run(args: &Args) -> Result<(), Failure> {
    for (name, v) in [
        ("malformed", args.malformed),
        ("invalid", args.invalid),
        ("duplicates", args.duplicates),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(Failure::config(anyhow::anyhow!(
                "--{name} must be between 0 and 1, got {v}"
            )));
        }
    }
    let faults = IotFaults {
        malformed: args.malformed,
        invalid: args.invalid,
        duplicates: args.duplicates,
    };
    let lines = iot_events(args.events, args.seed, faults, args.start_ms);
    let mut text = lines.join("\n");
    text.push('\n');
    let io = |e: std::io::Error| {
        Failure::runtime(anyhow::anyhow!("writing `{}`: {e}", args.out.display()))
    };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let name = args.out.to_string_lossy();
    let bytes = if name.ends_with(".zst") {
        zstd_encode(text.as_bytes()).map_err(io)?
    } else if name.ends_with(".gz") {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes()).map_err(io)?;
        enc.finish().map_err(io)?
    } else {
        text.into_bytes()
    };
    std::fs::write(&args.out, bytes).map_err(io)?;
    println!("wrote {} IoT events to {}", args.events, args.out.display());
    Ok(())
}

fn zstd_encode(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::encode_all(bytes, 3)
}
