//! Response bodies: JSON (default), CSV (`Accept: text/csv`) or Arrow IPC stream
//! (`Accept: application/vnd.apache.arrow.stream`). JSON carries the answer's facts (row count,
//! truncation, snapshots read, the SQL that ran) in the body; the other two carry them in
//! `X-Strata-*` headers.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, ServingError};
use crate::execute::Answer;

/// Arrow's IPC stream media type.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// A response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `text/csv` with a header row.
    Csv,
    /// Arrow IPC stream.
    Arrow,
}

impl Format {
    /// Picks the format from an `Accept` header.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains(ARROW_STREAM) => Format::Arrow,
            Some(a) if a.contains("text/csv") => Format::Csv,
            _ => Format::Json,
        }
    }

    /// The `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => ARROW_STREAM,
        }
    }

    /// A short name, part of cache keys.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Arrow => "arrow",
        }
    }
}

/// Facts about an answer that travel with it (also in the cache).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnswerFacts {
    /// Rows returned.
    pub row_count: usize,
    /// More rows existed than were returned.
    pub truncated: bool,
    /// The snapshot id of each table read.
    pub snapshots: BTreeMap<String, Option<i64>>,
    /// The SQL that ran (metrics only: a client's own SQL is not echoed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// The values bound to the SQL's `$n` placeholders, as the client sent them.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub params: Vec<String>,
    /// Milliseconds the query ran (0 when served from the cache).
    pub elapsed_ms: u64,
    /// For each table read live: the snapshot, the positions it committed and the positions
    /// the answer reaches (the answer is the table as of `upto`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub live: BTreeMap<String, crate::live::LiveFacts>,
}

/// Encodes an answer.
pub fn encode(answer: &Answer, facts: &AnswerFacts, format: Format) -> Result<Vec<u8>> {
    let err = |e: arrow::error::ArrowError| ServingError::Execution {
        message: format!("encoding the answer: {e}"),
    };
    match format {
        Format::Json => {
            let rows = json_rows(&answer.batches).map_err(err)?;
            let columns: Vec<Value> = answer
                .schema
                .fields()
                .iter()
                .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
                .collect();
            let mut body = serde_json::to_value(facts).map_err(|e| ServingError::Execution {
                message: e.to_string(),
            })?;
            if let Value::Object(map) = &mut body {
                map.insert("columns".into(), Value::Array(columns));
                map.insert("rows".into(), rows);
            }
            serde_json::to_vec(&body).map_err(|e| ServingError::Execution {
                message: e.to_string(),
            })
        }
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                if answer.batches.is_empty() {
                    writer
                        .write(&RecordBatch::new_empty(answer.schema.clone()))
                        .map_err(err)?;
                }
                for b in &answer.batches {
                    writer.write(b).map_err(err)?;
                }
            }
            Ok(out)
        }
        Format::Arrow => {
            let mut out = Vec::new();
            {
                let mut writer =
                    arrow::ipc::writer::StreamWriter::try_new(&mut out, &answer.schema)
                        .map_err(err)?;
                for b in &answer.batches {
                    writer.write(b).map_err(err)?;
                }
                writer.finish().map_err(err)?;
            }
            Ok(out)
        }
    }
}

/// The rows of `batches` as JSON objects.
pub fn json_rows(batches: &[RecordBatch]) -> std::result::Result<Value, arrow::error::ArrowError> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_slice(&bytes).map_err(|e| arrow::error::ArrowError::JsonError(e.to_string()))
}

/// A cached response: its facts as one JSON line, then the body.
pub fn pack(facts: &AnswerFacts, body: &[u8]) -> Vec<u8> {
    let mut out = serde_json::to_vec(facts).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// The inverse of [`pack`]; `None` for bytes that are not a packed response.
pub fn unpack(bytes: &[u8]) -> Option<(AnswerFacts, &[u8])> {
    let at = bytes.iter().position(|b| *b == b'\n')?;
    let facts = serde_json::from_slice(&bytes[..at]).ok()?;
    Some((facts, &bytes[at + 1..]))
}
