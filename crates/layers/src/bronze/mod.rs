//! Bronze: raw records exactly as produced, append-only, at
//! `bronze/source=<source>/date=<YYYY-MM-DD>/<name>`.
//!
//! * Append-only is enforced by the writer: every put is create-only (`PutMode::Create`); an
//!   existing object is never overwritten or deleted.
//! * Names come from source positions (e.g. `p3-000000001200-000000001399`), so a retried write
//!   of the same records hits the same name: identical bytes are recognised as already written,
//!   different bytes are a conflict error.
//! * A database full load also gets a marker once all its parts are stored
//!   (`bronze/source=<source>/_loads/<load>.json`, [`LoadMarker`]): a reader that must take a load
//!   whole waits for it.
//! * Source names, dates and names are validated so no value can escape the lake root.

mod loads;
mod media;
mod names;
mod reader;
mod writer;

pub use loads::{LOADS_FOLDER, LoadMarker};
pub use media::{MEDIA_FOLDER, MediaPolicy, MediaRecord, image_size, sniff};
pub use names::{BronzeDate, validate_name, validate_source};
pub use reader::{BronzeFile, BronzeFileReader, BronzeReader};
pub use writer::{BronzeWriter, PutOutcome};
