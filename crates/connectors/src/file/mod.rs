//! Local files as a source.

mod ndjson;

pub use ndjson::{Compression, NdjsonReader, ReaderOptions};
