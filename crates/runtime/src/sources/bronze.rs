//! Bronze files of one source (NDJSON or Parquet full loads), read in the order they were
//! written; each file is a commit boundary, and files a committed position covers are skipped.
//! For a table that mirrors the newest full load, [`BronzeSource::whole_loads`] reads that load
//! whole instead, with one boundary at its end ([`super::bronze_loads`]).

use arrow::datatypes::SchemaRef;
use strata_layers::bronze::{BronzeDate, BronzeFile, BronzeFileReader, BronzeReader};
use strata_layers::lake::Lake;

use crate::contract::{Polled, Source};
use crate::error::{Result, RuntimeError};
use crate::position::Position;

/// Reads the bronze files of one source, file after file.
pub struct BronzeSource {
    reader: BronzeReader,
    source: String,
    files: Vec<BronzeFile>,
    listed: usize,
    schema: SchemaRef,
    batch_rows: usize,
    batch_bytes: usize,
    ingested_at_micros: i64,
    next_file: usize,
    current: Option<(String, BronzeFileReader)>,
    /// Whole-load mode: the load markers, then (after the seek) what the one commit covers.
    loads: Option<WholeLoads>,
}

#[derive(Debug, Default)]
struct WholeLoads {
    markers: Vec<(String, strata_layers::bronze::LoadMarker)>,
    cover: Option<Vec<String>>,
}

impl std::fmt::Debug for BronzeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BronzeSource")
            .field("source", &self.source)
            .field("files", &self.files.len())
            .field("next_file", &self.next_file)
            .finish()
    }
}

impl BronzeSource {
    /// Lists the files of `source` dated within `[from, to]`. Their kind decides the schema:
    /// raw records for NDJSON, the file's own columns for Parquet; a source mixing both, or
    /// Parquet files with different columns, is refused.
    pub async fn open(
        lake: Lake,
        source: &str,
        from: Option<BronzeDate>,
        to: Option<BronzeDate>,
        batch_rows: usize,
        batch_bytes: usize,
        ingested_at_micros: i64,
    ) -> Result<Self> {
        let reader = BronzeReader::new(lake);
        let files = reader.list(source, from, to).await?;
        let schema = match files.first() {
            Some(first) => {
                let parquet = BronzeReader::is_parquet(first);
                if let Some(other) = files
                    .iter()
                    .find(|f| BronzeReader::is_parquet(f) != parquet)
                {
                    return Err(RuntimeError::config(
                        format!("bronze source `{source}`"),
                        format!(
                            "mixes Parquet and NDJSON files ({} and {})",
                            first.relative, other.relative
                        ),
                        "a pipeline reads one kind: move the other files to a source of their own",
                    ));
                }
                reader.input_schema(first).await?
            }
            None => strata_core::lineage::file_input_schema(),
        };
        Ok(BronzeSource {
            reader,
            source: source.to_string(),
            listed: files.len(),
            files,
            schema,
            batch_rows,
            batch_bytes,
            ingested_at_micros,
            next_file: 0,
            current: None,
            loads: None,
        })
    }

    /// Reads only whole, complete full loads: the newest one not yet covered, with one commit
    /// boundary after its last part (see [`super::bronze_loads`]).
    pub async fn whole_loads(mut self) -> Result<Self> {
        let markers = self.reader.loads(&self.source).await?;
        self.loads = Some(WholeLoads {
            markers,
            cover: None,
        });
        Ok(self)
    }

    async fn open_next(&mut self) -> Result<Option<()>> {
        let Some(file) = self.files.get(self.next_file).cloned() else {
            return Ok(None);
        };
        self.next_file += 1;
        if BronzeReader::is_parquet(&file) {
            let schema = self.reader.input_schema(&file).await?;
            if !same_fields(&schema, &self.schema) {
                return Err(RuntimeError::Protocol {
                    table: file.relative.clone(),
                    problem: format!(
                        "its columns differ from the first file's: {:?} vs {:?}",
                        names(&schema),
                        names(&self.schema)
                    ),
                    hint: "a full load with a changed table belongs in a new bronze source",
                });
            }
        }
        let stream = self
            .reader
            .open(
                &file,
                self.batch_rows,
                self.batch_bytes,
                self.ingested_at_micros,
            )
            .await?;
        self.current = Some((file.relative, stream));
        Ok(Some(()))
    }
}

fn names(schema: &SchemaRef) -> Vec<&String> {
    schema.fields().iter().map(|f| f.name()).collect()
}

/// Fields equal by name, type and nullability (Parquet files carry varying metadata).
fn same_fields(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields().iter()).all(|(x, y)| {
            x.name() == y.name()
                && x.data_type() == y.data_type()
                && x.is_nullable() == y.is_nullable()
        })
}

#[async_trait::async_trait]
impl Source for BronzeSource {
    fn name(&self) -> String {
        format!("bronze/source={}", self.source)
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn describe(&self) -> String {
        format!(
            "{} bronze files of source `{}`, {} already committed, {} to process",
            self.listed,
            self.source,
            self.listed - self.files.len(),
            self.files.len()
        )
    }

    fn units_left(&self) -> Option<usize> {
        Some(self.files.len())
    }

    async fn seek(&mut self, committed: Option<&Position>) -> Result<()> {
        let done: std::collections::HashSet<&String> =
            super::covered_files(&self.name(), committed)?
                .iter()
                .collect();
        self.next_file = 0;
        if let Some(loads) = self.loads.as_mut() {
            let plan = super::bronze_loads::LoadPlan::plan(
                &self.source,
                &self.files,
                &loads.markers,
                &done,
            )?;
            if plan.incomplete_parts > 0 {
                tracing::warn!(
                    source = %self.source,
                    parts = plan.incomplete_parts,
                    "bronze parts of no complete load (cut off or still running) are not read"
                );
            }
            if !plan.stale.is_empty() {
                tracing::warn!(
                    source = %self.source,
                    loads = ?plan.stale,
                    "complete loads older than the one the table holds are left alone"
                );
            }
            if let Some(load) = &plan.load {
                tracing::info!(
                    source = %self.source,
                    load = %load,
                    parts = plan.files.len(),
                    superseded = ?plan.superseded,
                    "reading the newest complete load whole"
                );
            }
            self.listed = plan.files.len();
            self.files = plan.files;
            loads.cover = plan.load.is_some().then_some(plan.cover);
            return Ok(());
        }
        self.files.retain(|f| !done.contains(&f.relative));
        Ok(())
    }

    async fn next(&mut self) -> Result<Polled> {
        loop {
            if let Some((name, mut stream)) = self.current.take() {
                return match stream.next_batch().await? {
                    Some(batch) => {
                        // A Kafka topic's bronze copy: the pipeline reads the record values, as
                        // the streaming driver does on the topic.
                        let batch = if crate::bronze_copy::is_kafka_copy(&name) {
                            crate::bronze_copy::unwrap_values(&batch)?
                        } else {
                            batch
                        };
                        self.current = Some((name, stream));
                        Ok(Polled::Batch {
                            batch,
                            position: None,
                        })
                    }
                    None => match self.loads.as_mut() {
                        // A load commits whole: one boundary, after its last part.
                        Some(loads) => match self.next_file >= self.files.len() {
                            true => Ok(Polled::Reached(Position::files(
                                loads.cover.take().unwrap_or_default(),
                            ))),
                            false => continue,
                        },
                        None => Ok(Polled::Reached(Position::files([name]))),
                    },
                };
            }
            if self.open_next().await?.is_none() {
                // A load without parts (an emptied table) still commits: it empties the table.
                if let Some(cover) = self.loads.as_mut().and_then(|l| l.cover.take()) {
                    return Ok(Polled::Reached(Position::files(cover)));
                }
                return Ok(Polled::End);
            }
        }
    }
}
