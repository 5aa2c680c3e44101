//! The shipped sinks and their commit protocols: Parquet files (local runs), silver tables fed
//! from files (coverage by file) and from Kafka (positions, writer epochs, replay filter), an
//! Avro topic (positions in the consumer group or a transaction, dead letters) and a bronze
//! copy of a topic (positions in the file names), raw records to a topic (an ingestion's
//! position in its state file), waiting webhook requests' records (each request answered), and database load parts into bronze (watermarks in a state file).

mod bronze_copy;
mod bronze_parts;
mod kafka_avro;
pub mod kafka_records;
mod kafka_replies;
mod memory;
mod parquet_files;
mod silver_files;
mod silver_stream;
mod silver_tables;

pub use bronze_copy::BronzeCopySink;
pub use bronze_parts::{BronzePartsSink, PartCounts};
pub use kafka_avro::{AvroOutput, InputGroup, KafkaAvroSink, register_output_schema};
pub use kafka_records::KafkaRecordsSink;
pub use kafka_replies::RepliedRecordsSink;
pub use memory::MemoryPlan;
pub use parquet_files::ParquetFilesSink;
pub use silver_files::SilverFilesSink;
pub use silver_stream::{SilverStreamSink, positions_of};
pub use silver_tables::{AlsoTable, RowsWriter, SilverTables, read_state_chain, state_chain_of};
