//! Local NDJSON files (plain, gzip or zstd) read in order, each committed whole.

use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use strata_connectors::file::{NdjsonReader, ReaderOptions};

use crate::contract::{Polled, Source};
use crate::error::{Result, RuntimeError};
use crate::position::Position;

/// Reads local NDJSON files one after the other; the end of each file is a commit boundary.
pub struct NdjsonFilesSource {
    files: Vec<PathBuf>,
    options: ReaderOptions,
    next_file: usize,
    current: Option<(String, NdjsonReader)>,
}

impl std::fmt::Debug for NdjsonFilesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonFilesSource")
            .field("files", &self.files)
            .field("next_file", &self.next_file)
            .finish()
    }
}

impl NdjsonFilesSource {
    /// A source over `files`, in this order.
    pub fn new(files: Vec<PathBuf>, options: ReaderOptions) -> Self {
        NdjsonFilesSource {
            files,
            options,
            next_file: 0,
            current: None,
        }
    }
}

#[async_trait::async_trait]
impl Source for NdjsonFilesSource {
    fn name(&self) -> String {
        format!("files ({})", self.files.len())
    }

    fn schema(&self) -> SchemaRef {
        strata_core::lineage::file_input_schema()
    }

    async fn seek(&mut self, committed: Option<&Position>) -> Result<()> {
        let done = super::covered_files("ndjson files", committed)?;
        self.files
            .retain(|f| !done.contains(&f.display().to_string()));
        Ok(())
    }

    async fn next(&mut self) -> Result<Polled> {
        loop {
            if let Some((name, mut reader)) = self.current.take() {
                // The reader is synchronous file I/O: off the async workers.
                let (reader, next) = tokio::task::spawn_blocking(move || {
                    let next = reader.next();
                    (reader, next)
                })
                .await
                .map_err(|e| RuntimeError::Stage {
                    stage: "source",
                    message: e.to_string(),
                })?;
                return match next {
                    Some(batch) => {
                        let batch = batch?;
                        self.current = Some((name, reader));
                        Ok(Polled::Batch {
                            batch,
                            position: None,
                        })
                    }
                    None => Ok(Polled::Reached(Position::files([name]))),
                };
            }
            let Some(path) = self.files.get(self.next_file).cloned() else {
                return Ok(Polled::End);
            };
            self.next_file += 1;
            let options = self.options.clone();
            let opened = tokio::task::spawn_blocking(move || {
                NdjsonReader::open(&path, options).map_err(RuntimeError::from)
            })
            .await
            .map_err(|e| RuntimeError::Stage {
                stage: "source",
                message: e.to_string(),
            })??;
            let name = self.files[self.next_file - 1].display().to_string();
            self.current = Some((name, opened));
        }
    }
}
