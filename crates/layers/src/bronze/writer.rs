//! The bronze writer: create-only puts of raw records, one object per source-position range.

use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::names::{BronzeDate, validate_name, validate_source};
use crate::error::{LayersError, Result};
use crate::lake::Lake;

/// What a put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new object was created.
    Created {
        /// Path below the lake root.
        path: String,
        /// Object size.
        bytes: u64,
    },
    /// The same bytes were already there: a retried write, recognised and not repeated.
    AlreadyPresent {
        /// Path below the lake root.
        path: String,
    },
}

/// Writes bronze objects into a lake.
#[derive(Debug, Clone)]
pub struct BronzeWriter {
    lake: Lake,
    zstd_level: i32,
}

impl BronzeWriter {
    /// A writer into `lake`.
    pub fn new(lake: Lake) -> Self {
        BronzeWriter {
            lake,
            zstd_level: 3,
        }
    }

    /// The lake it writes.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The object path of a bronze file (validated).
    pub fn object_path(&self, source: &str, date: BronzeDate, name: &str) -> Result<Path> {
        validate_source(source)?;
        validate_name(name)?;
        let source_part = format!("source={source}");
        let date_part = format!("date={date}");
        Ok(self
            .lake
            .path(["bronze", source_part.as_str(), date_part.as_str(), name]))
    }

    /// Writes records as zstd-compressed NDJSON (`<stem>.ndjson.zst`), one record per line.
    /// A record containing a newline cannot be NDJSON: it is refused (use the Parquet flavour).
    pub async fn put_ndjson<R: AsRef<[u8]>>(
        &self,
        source: &str,
        date: BronzeDate,
        stem: &str,
        records: &[R],
    ) -> Result<PutOutcome> {
        let path = self.object_path(source, date, &format!("{stem}.ndjson.zst"))?;
        let mut text = Vec::with_capacity(records.iter().map(|r| r.as_ref().len() + 1).sum());
        for (i, r) in records.iter().enumerate() {
            let r = r.as_ref();
            if r.contains(&b'\n') {
                return Err(LayersError::RecordHasNewline {
                    path: self.lake.relative(&path),
                    index: i,
                });
            }
            text.extend_from_slice(r);
            text.push(b'\n');
        }
        let compressed = zstd::encode_all(text.as_slice(), self.zstd_level).map_err(|source| {
            LayersError::Io {
                path: self.lake.relative(&path),
                source,
            }
        })?;
        self.put_create(&path, Bytes::from(compressed)).await
    }

    /// Writes batches as one zstd Parquet object (`<stem>.parquet`), with the source's own types
    /// and `metadata` (e.g. the snapshot time of a full load) in the file's key-value metadata.
    pub async fn put_parquet(
        &self,
        source: &str,
        date: BronzeDate,
        stem: &str,
        batches: &[RecordBatch],
        metadata: &[(&str, &str)],
    ) -> Result<PutOutcome> {
        let path = self.object_path(source, date, &format!("{stem}.parquet"))?;
        let shown = self.lake.relative(&path);
        let Some(first) = batches.first() else {
            return Err(LayersError::Empty { path: shown });
        };
        let kv = metadata
            .iter()
            .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string()))
            .collect();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_key_value_metadata(Some(kv))
            .build();
        let parquet_err = |source| LayersError::Parquet {
            path: shown.clone(),
            source,
        };
        let mut w =
            ArrowWriter::try_new(Vec::new(), first.schema(), Some(props)).map_err(parquet_err)?;
        for b in batches {
            w.write(b).map_err(parquet_err)?;
        }
        let bytes = w.into_inner().map_err(parquet_err)?;
        self.put_create(&path, Bytes::from(bytes)).await
    }

    /// Create-only put. If the object exists with the same bytes, the write is a recognised
    /// retry; with other bytes it is a conflict — never an overwrite.
    pub(super) async fn put_create(&self, path: &Path, bytes: Bytes) -> Result<PutOutcome> {
        let shown = self.lake.relative(path);
        let store: &Arc<dyn ObjectStore> = self.lake.store();
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let size = bytes.len() as u64;
        match store
            .put_opts(path, PutPayload::from_bytes(bytes.clone()), opts)
            .await
        {
            Ok(_) => Ok(PutOutcome::Created {
                path: shown,
                bytes: size,
            }),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = store
                    .get(path)
                    .await
                    .map_err(|source| LayersError::Store {
                        path: shown.clone(),
                        source,
                    })?
                    .bytes()
                    .await
                    .map_err(|source| LayersError::Store {
                        path: shown.clone(),
                        source,
                    })?;
                if existing == bytes {
                    Ok(PutOutcome::AlreadyPresent { path: shown })
                } else {
                    Err(LayersError::BronzeConflict { path: shown })
                }
            }
            Err(source) => Err(LayersError::Store {
                path: shown,
                source,
            }),
        }
    }
}
