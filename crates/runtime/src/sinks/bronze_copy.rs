//! A Kafka topic copied into bronze, raw and complete (the sink of `strata stream bronze`, behind
//! a [`crate::Passthrough`]).
//!
//! Each record becomes one NDJSON line ([`crate::bronze_copy::envelope`]). At each commit every
//! partition's staged records become one file named after the partition and the offset range it
//! holds (`kafka-p0003-<first>-<last>.ndjson.zst`), written create-only. The bronze files
//! themselves are the committed position: on start the sink lists them and the source resumes
//! each partition after its highest offset, so a crash after a file was written re-copies
//! nothing, and a crash before re-reads it from Kafka. A commit policy bounded by rows and
//! interval is the file size and age bound.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use strata_layers::bronze::{BronzeDate, BronzeReader, BronzeWriter};
use strata_layers::lake::Lake;

use crate::bronze_copy::{envelope, file_stem, parse_stem};
use crate::contract::{CommitReport, Committed, Committer, Sink, StateUpdate};
use crate::error::{Result, RuntimeError};
use crate::position::Position;

/// One partition's staged lines.
#[derive(Default)]
struct Staged {
    lines: Vec<Vec<u8>>,
    first: Option<i64>,
    last: i64,
}

/// Writes Kafka batches (the source's schema, unchanged) as bronze files of `source`.
pub struct BronzeCopySink {
    lake: Lake,
    source: String,
    staged: BTreeMap<i32, Staged>,
    files: u64,
}

impl std::fmt::Debug for BronzeCopySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BronzeCopySink")
            .field("source", &self.source)
            .field("files", &self.files)
            .finish()
    }
}

impl BronzeCopySink {
    /// Copies into `bronze/source=<source>` of `lake`.
    pub fn new(lake: Lake, source: impl Into<String>) -> Self {
        BronzeCopySink {
            lake,
            source: source.into(),
            staged: BTreeMap::new(),
            files: 0,
        }
    }

    /// Bronze files written by this sink so far.
    pub fn files_written(&self) -> u64 {
        self.files
    }
}

#[async_trait::async_trait]
impl Sink for BronzeCopySink {
    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| RuntimeError::Stage {
                    stage: "sink",
                    message: format!("a Kafka batch without `{name}`"),
                })
        };
        let parts = column("_kafka_partition")?
            .as_primitive::<Int32Type>()
            .clone();
        let offsets = column("_kafka_offset")?.as_primitive::<Int64Type>().clone();
        for i in 0..batch.num_rows() {
            let p = self.staged.entry(parts.value(i)).or_default();
            p.first.get_or_insert(offsets.value(i));
            p.last = offsets.value(i);
            p.lines.push(envelope(batch, i));
        }
        Ok(())
    }

    async fn write_quarantine(&mut self, rows: &RecordBatch) -> Result<()> {
        // A copy quarantines nothing; a transform in front of this sink would lose these rows.
        Err(RuntimeError::Stage {
            stage: "sink",
            message: format!(
                "{} quarantined records reached a bronze copy, which keeps records unchanged",
                rows.num_rows()
            ),
        })
    }
}

#[async_trait::async_trait]
impl Committer for BronzeCopySink {
    async fn committed(&mut self) -> Result<Committed> {
        let mut next = BTreeMap::new();
        for f in BronzeReader::new(self.lake.clone())
            .list(&self.source, None, None)
            .await?
        {
            let name = f.relative.rsplit('/').next().unwrap_or_default();
            if let Some((p, last)) = parse_stem(name) {
                let after = last.saturating_add(1);
                let e = next.entry(p).or_insert(after);
                *e = (*e).max(after);
            }
        }
        Ok(Committed {
            position: (!next.is_empty()).then(|| Position::kafka(next)),
            state: None,
            state_deltas: Vec::new(),
        })
    }

    async fn commit(&mut self, _position: &Position, _state: StateUpdate) -> Result<CommitReport> {
        let writer = BronzeWriter::new(self.lake.clone());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or_default();
        let date = BronzeDate::from_epoch_micros(now);
        let (mut rows, mut names) = (0u64, Vec::new());
        for (partition, p) in std::mem::take(&mut self.staged) {
            let Some(first) = p.first.filter(|_| !p.lines.is_empty()) else {
                continue;
            };
            let stem = file_stem(partition, first, p.last);
            writer
                .put_ndjson(&self.source, date, &stem, &p.lines)
                .await?;
            rows += p.lines.len() as u64;
            names.push(stem);
            self.files += 1;
        }
        Ok(CommitReport {
            rows,
            quarantined: 0,
            units: names.len(),
            conflicts: 0,
            covers: format!("bronze/source={} files {}", self.source, names.join(", ")),
        })
    }
}
