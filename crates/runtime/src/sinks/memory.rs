//! How a memory budget is spent by a driver writing silver: batch sizes, channel depth and the
//! Parquet buffers of the open data files.

use strata_layers::silver::WriteOptions;

use crate::error::{Result, RuntimeError};

/// How `memory_mb` is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Raw bytes per input batch (NDJSON).
    pub batch_bytes: usize,
    /// Batches in flight between reader and pipeline, and between pipeline and writer.
    pub channel_depth: usize,
    /// Parquet buffers of the rows table.
    pub rows: WriteOptions,
    /// Parquet buffers of the quarantine table.
    pub quarantine: WriteOptions,
}

impl MemoryPlan {
    /// Splits `memory_mb`: 1/8 per channel, 3/8 for open rows files, 1/16 for quarantine files;
    /// the rest is the pipeline's working set (a few batches while decoding).
    pub fn new(memory_mb: usize) -> Result<Self> {
        if memory_mb < 64 {
            return Err(RuntimeError::config(
                "--memory-mb",
                format!("{memory_mb} MiB is too small"),
                "give at least 64 MiB",
            ));
        }
        let total = memory_mb.saturating_mul(1 << 20);
        let batch_bytes = (total / 64).clamp(1 << 20, 16 << 20);
        Ok(MemoryPlan {
            batch_bytes,
            channel_depth: (total / 8 / batch_bytes).max(2),
            rows: WriteOptions {
                flush_bytes: total / 8 * 3,
                ..WriteOptions::default()
            },
            quarantine: WriteOptions {
                flush_bytes: total / 16,
                ..WriteOptions::default()
            },
        })
    }
}
