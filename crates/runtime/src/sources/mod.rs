//! The shipped sources: local NDJSON files, bronze files (NDJSON or Parquet), Kafka topics, an
//! HTTP API polled with a cursor, the MySQL / MariaDB binlog, a PostgreSQL snapshot load,
//! the requests a webhook receiver accepted.
//! Each hands out batches with the lineage columns of its input and the position a commit may
//! cover.

mod bronze;
pub mod bronze_loads;
pub mod http_poll;
mod kafka;
pub mod mysql_cdc;
mod ndjson_files;
pub mod pg_load;
pub mod webhook;

pub use bronze::BronzeSource;
pub use http_poll::{HttpPollSource, open_http_ingest};
pub use kafka::{KafkaBatching, KafkaTopicSource, SharedGroup};
pub use mysql_cdc::{MysqlCdcRecordsSource, open_mysql_cdc};
pub use ndjson_files::NdjsonFilesSource;
pub use pg_load::PgLoadSource;
pub use webhook::{WebhookSource, webhook_source};

use crate::error::{Result, RuntimeError};
use crate::position::Position;

/// The files a committed position covers (empty for none); any other kind is a protocol error
/// naming the source.
pub(crate) fn covered_files<'a>(
    source: &str,
    committed: Option<&'a Position>,
) -> Result<&'a [String]> {
    match committed {
        None => Ok(&[]),
        Some(Position::Files { files }) => Ok(files),
        Some(other) => Err(RuntimeError::Protocol {
            table: source.to_string(),
            problem: format!("the output's committed position is not a list of files: {other:?}"),
            hint: "the output was written by another kind of source; use a new table",
        }),
    }
}
