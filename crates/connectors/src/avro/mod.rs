//! Avro for pipeline output, in the Confluent Schema Registry wire format.
//!
//! Why: Kafka consumers in the platform (Java, Python, ksqlDB, Kafka Connect) read Avro through
//! a Confluent-compatible Schema Registry; Strata's output must be readable by them and Strata
//! must read what they write.
//!
//! * [`schema`] maps a pipeline's Arrow output schema to an Avro record schema (nullable →
//!   `["null", T]` with default null, timestamps and decimals as logical types).
//! * [`encode`] turns each row of a RecordBatch into one message: `0x00`, the schema id as a
//!   big-endian `u32`, then the Avro binary datum.
//! * [`decode`] reads such messages back — writer schema fetched by id from the registry — into
//!   JSON values or an Arrow batch of a target schema. [`guard`] walks every datum first, so
//!   hostile bytes are an error, never an abort or an unbounded allocation.
//!
//! Invariants: encode → decode returns the same batch (property-tested, including nulls,
//! decimals, timestamps, nested structs and lists); schema problems (a name Avro refuses, a type
//! without a mapping) are reported before any row is written, naming the column.

pub mod decode;
mod direct;
pub mod encode;
pub mod guard;
pub mod schema;

pub use decode::{AvroDecoder, WriterSchema, unframe, values_to_batch};
pub use encode::{AvroEncoder, MAGIC_BYTE, frame};
pub use schema::{AvroSchema, arrow_to_avro};
