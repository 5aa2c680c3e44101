//! # strata-core
//!
//! The transformation heart of Strata: one pipeline of vectorised steps over Arrow
//! [`RecordBatch`](arrow::array::RecordBatch)es that gives the same result in the streaming
//! driver (one call per micro-batch) and the batch driver (one call per file chunk).
//!
//! * [`PipelineSpec`] — what users write (YAML / JSON / Rust builder);
//! * [`Pipeline`] — the validated, runnable chain: `process`, `finish`, `checkpoint`, `restore`;
//! * quarantine instead of failure: a record that is not JSON, does not fit the schema, fails a
//!   cast or a rule goes to the quarantine batch alone, with its raw bytes, step and reason.
//!
//! This crate does no I/O and has no async runtime: drivers own sources, sinks and positions.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{BinaryArray, RecordBatch};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use strata_core::{BuildContext, Pipeline, PipelineSpec};
//!
//! let spec = PipelineSpec::from_yaml(r#"
//! name: demo
//! steps:
//!   - type: parse_json
//!     schema: { id: int64 not null, temp: float64 }
//!   - type: derive
//!     columns: { temp_f: "temp * 9 / 5 + 32" }
//! output:
//!   schema: { id: int64 not null, temp: float64, temp_f: float64 }
//! "#).unwrap();
//! let input = Arc::new(Schema::new(vec![Field::new("_raw", DataType::Binary, true)]));
//! let mut pipeline = Pipeline::build(&spec, input.clone(), &BuildContext::default()).unwrap();
//! let raw = BinaryArray::from_iter_values([&br#"{"id":1,"temp":"20"}"#[..], b"not json"]);
//! let out = pipeline.process(&RecordBatch::try_new(input, vec![Arc::new(raw)]).unwrap()).unwrap();
//! assert_eq!(out.num_rows(), 1);
//! assert_eq!(out.quarantined.num_rows(), 1);
//! ```

#![deny(missing_docs)]

mod checkpoint;
pub mod encryption;
pub mod error;
mod expr;
mod ipc_guard;
pub mod keyed;
pub mod line_format;
pub mod lineage;
pub mod metrics;
pub mod partition_plan;
pub mod pipeline;
mod safe_cast;
pub mod sample;
pub mod spec;
pub mod step;
pub mod steps;
pub mod types;

pub use error::{CoreError, Result};
pub use metrics::{PipelineMetrics, RuleMetrics, StepMetrics};
pub use partition_plan::PartitionPlan;
pub use pipeline::{BuildContext, Output, Pipeline};
pub use spec::{PipelineSpec, RuleAction};
