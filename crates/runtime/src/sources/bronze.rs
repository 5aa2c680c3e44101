//! Bronze files of one source (NDJSON or Parquet full loads), read in the order they were
//! written; each file is a commit boundary, and files a committed position covers are skipped.

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
        })
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
        self.files.retain(|f| !done.contains(&f.relative));
        self.next_file = 0;
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
                    None => Ok(Polled::Reached(Position::files([name]))),
                };
            }
            if self.open_next().await?.is_none() {
                return Ok(Polled::End);
            }
        }
    }
}
