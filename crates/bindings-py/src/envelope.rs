//! The bytes of `Pipeline.checkpoint()`: everything `Pipeline.restore(bytes)` needs to rebuild
//! the pipeline and its state in another process (a Spark task retry, a restarted worker).
//!
//! Layout: `STRATAPY` · version (1 byte) · CRC-32 of the rest (u32 LE) · header length (u32 LE)
//! · header (JSON: the spec and the stage) · schema length (u32 LE) · the input schema (Arrow
//! IPC stream, no rows) · the core's own checkpoint (versioned and checked by `strata-core`).

use std::io::Cursor;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use serde_json::json;
use strata_core::PipelineSpec;

use crate::stage::Stage;

const MAGIC: &[u8; 8] = b"STRATAPY";
const VERSION: u8 = 1;

/// What a checkpoint holds.
pub(crate) struct Envelope {
    pub spec: PipelineSpec,
    pub stage: Stage,
    pub input_schema: SchemaRef,
    pub state: Vec<u8>,
}

/// Why a checkpoint cannot be read.
pub(crate) type Problem = String;

impl Envelope {
    /// Encodes the checkpoint.
    pub fn encode(&self) -> Result<Vec<u8>, Problem> {
        let header = json!({
            "spec": serde_json::to_value(&self.spec).map_err(|e| e.to_string())?,
            "stage": self.stage.name(),
        })
        .to_string();
        let mut schema = Vec::new();
        {
            let mut writer = StreamWriter::try_new(&mut schema, self.input_schema.as_ref())
                .map_err(|e| e.to_string())?;
            writer.finish().map_err(|e| e.to_string())?;
        }
        let mut body = Vec::with_capacity(header.len() + schema.len() + self.state.len() + 8);
        for part in [header.as_bytes(), schema.as_slice()] {
            let len = u32::try_from(part.len()).map_err(|_| "a part over 4 GiB".to_string())?;
            body.extend_from_slice(&len.to_le_bytes());
            body.extend_from_slice(part);
        }
        body.extend_from_slice(&self.state);
        let mut out = Vec::with_capacity(body.len() + 13);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a checkpoint, refusing foreign, newer or corrupt bytes with the reason.
    pub fn decode(bytes: &[u8]) -> Result<Self, Problem> {
        if bytes.len() < 13 || &bytes[..8] != MAGIC {
            return Err("not a Strata Python checkpoint (no STRATAPY header)".into());
        }
        if bytes[8] != VERSION {
            return Err(format!(
                "checkpoint format version {} (this strata reads version {VERSION})",
                bytes[8]
            ));
        }
        let crc = u32::from_le_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]);
        let body = &bytes[13..];
        if crc32fast::hash(body) != crc {
            return Err("the checkpoint is corrupt (CRC mismatch)".into());
        }
        let mut at = 0usize;
        let mut part = || -> Result<&[u8], Problem> {
            let len_end = at.checked_add(4).filter(|&e| e <= body.len());
            let len_end = len_end.ok_or("the checkpoint is truncated")?;
            let len = u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
            let end = len_end
                .checked_add(len as usize)
                .filter(|&e| e <= body.len())
                .ok_or("the checkpoint is truncated")?;
            let slice = &body[len_end..end];
            at = end;
            Ok(slice)
        };
        let header = part()?;
        let schema = part()?;
        let header: serde_json::Value =
            serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
        let spec = PipelineSpec::from_json(&header["spec"].to_string())
            .map_err(|e| format!("spec: {e}"))?;
        let stage = Stage::parse(header["stage"].as_str().unwrap_or("whole"))
            .map_err(|e| format!("stage: {e}"))?;
        let reader = StreamReader::try_new(Cursor::new(schema), None)
            .map_err(|e| format!("input schema: {e}"))?;
        let input_schema: SchemaRef = reader.schema();
        let state = body[at..].to_vec();
        Ok(Envelope {
            spec,
            stage,
            input_schema: std::sync::Arc::new(Schema::clone(&input_schema)),
            state,
        })
    }
}
