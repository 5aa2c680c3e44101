//! A Confluent-compatible Schema Registry: a REST client for any registry, the compatibility
//! rules, and a small embedded server.
//!
//! * [`client::RegistryClient`] talks to Confluent Schema Registry (or Karapace, Apicurio's
//!   Confluent API, or [`server`]): register, look up, fetch by id (cached), compatibility
//!   checks, config. [`client::RegistryClient::ensure_registered`] is what writers call: it
//!   refuses a schema that breaks the subject's compatibility level with an error naming the
//!   subject and the reason, before anything is produced.
//! * [`compat`] implements the seven Confluent compatibility levels on apache-avro's
//!   `SchemaCompatibility`.
//! * [`server`] implements the REST subset Strata and Confluent's clients use, with state in one
//!   JSON file written atomically (temp file + rename), so schema ids survive restarts; a
//!   missing state file is refused unless the server is told to create one (`--init`).
//! * [`auth`] decides who may write to that server (basic auth and/or a bearer token, compared
//!   in constant time), and [`server::RegistryLimits`] how far it may grow.

pub mod auth;
pub mod client;
pub mod compat;
pub mod metrics;
pub mod server;

pub use auth::RegistryAuth;
pub use client::{RegistryClient, RegistryConfig, SubjectNameStrategy, SubjectVersion};
pub use compat::CompatibilityLevel;
pub use server::{RegistryLimits, RegistryOptions, RegistryServer};
