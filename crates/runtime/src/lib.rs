//! # strata-runtime
//!
//! The runtime of Strata: the contract every source and sink implements ([`Source`], [`Sink`],
//! [`Committer`]), the one driver loop that runs any of them around a pipeline ([`Driver`]),
//! the one [`Position`] type, and the exactly-once protocols of the shipped sinks — so a Rust
//! service that takes Strata as a dependency gets the same guarantees as the `strata` command.
//!
//! * [`sources`]: local NDJSON files, bronze files, Kafka topics;
//! * [`sinks`]: Parquet files, silver tables fed from files (coverage by file) and from Kafka
//!   (positions, writer epochs, replay filter);
//! * [`hooks`]: where metrics, progress and lineage attach.
//!
//! See `docs/architecture.md` for the loop, and how to plug in a source of your own.

#![deny(missing_docs)]

pub mod bronze_copy;
pub mod catalog;
pub mod contract;
pub mod dead_letters;
pub mod driver;
pub mod error;
pub mod hooks;
pub mod lineage;
pub mod metrics;
pub mod position;
pub mod sinks;
pub mod sources;
pub mod state_store;
pub mod transform;

pub use contract::{
    CommitReport, Committed, Committer, Polled, Sink, Source, SourceLag, StateUpdate,
};
pub use driver::{CommitPolicy, Driver, DriverOptions, RunReport, StopReason};
pub use error::{ErrorKind, Result, RuntimeError};
pub use hooks::{BatchStats, DriverHooks, HookSet, NoHooks, RunInfo};
pub use position::{Position, SummaryKeys};
pub use transform::{Passthrough, Transform};
