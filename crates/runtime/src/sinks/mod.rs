//! The shipped sinks and their commit protocols: Parquet files (local runs), silver tables fed
//! from files (coverage by file) and from Kafka (positions, writer epochs, replay filter).

mod memory;
mod parquet_files;
mod silver_files;
mod silver_stream;
mod silver_tables;

pub use memory::MemoryPlan;
pub use parquet_files::ParquetFilesSink;
pub use silver_files::SilverFilesSink;
pub use silver_stream::SilverStreamSink;
pub use silver_tables::SilverTables;
