//! Which part of a cut pipeline (see `strata_core::partition_plan`) a `Pipeline` runs: the
//! whole, the prefix (which carries `_raw` along) or the suffix (which gets it back).

use arrow::array::RecordBatch;
use strata_core::partition_plan::{prefix_input, prefix_quarantine, suffix_input};

/// The part of a cut pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Whole,
    Prefix,
    Suffix,
}

impl Stage {
    /// Parses `whole`, `prefix` or `suffix`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "whole" => Ok(Stage::Whole),
            "prefix" => Ok(Stage::Prefix),
            "suffix" => Ok(Stage::Suffix),
            other => Err(format!(
                "unknown stage `{other}` (expected whole, prefix or suffix)"
            )),
        }
    }

    /// The name [`Stage::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Whole => "whole",
            Stage::Prefix => "prefix",
            Stage::Suffix => "suffix",
        }
    }

    /// The batch the stage's pipeline reads.
    pub fn input(self, batch: &RecordBatch) -> strata_core::Result<RecordBatch> {
        match self {
            Stage::Whole => Ok(batch.clone()),
            Stage::Prefix => prefix_input(batch),
            Stage::Suffix => suffix_input(batch),
        }
    }

    /// The quarantine batch the stage returns.
    pub fn quarantine(self, batch: RecordBatch) -> strata_core::Result<RecordBatch> {
        match self {
            Stage::Prefix => prefix_quarantine(&batch),
            _ => Ok(batch),
        }
    }
}
