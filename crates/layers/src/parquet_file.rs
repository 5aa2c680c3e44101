//! A local Parquet file sink: zstd-compressed, row groups of bounded size, and create-only — an
//! existing file is never overwritten (the open fails), so a rerun cannot destroy earlier output.
//!
//! The file is written under a temporary name in the same folder and renamed into place by
//! [`ParquetFileWriter::close`], so a crash never leaves a half-written file at the final path.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{LayersError, Result};

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Final path.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// Writes record batches of one schema to one Parquet file.
pub struct ParquetFileWriter {
    path: PathBuf,
    temp: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl std::fmt::Debug for ParquetFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetFileWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish()
    }
}

impl ParquetFileWriter {
    /// Creates `path` for writing; fails if it exists.
    pub fn create(path: impl AsRef<Path>, schema: SchemaRef) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        if path.exists() {
            return Err(LayersError::AlreadyExists { path: shown });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| LayersError::Io {
                path: shown.clone(),
                source,
            })?;
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let temp = path.with_file_name(format!(".{file_name}.inprogress"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|source| LayersError::Io {
                path: temp.display().to_string(),
                source,
            })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(1 << 20))
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|source| {
            LayersError::Parquet {
                path: shown,
                source,
            }
        })?;
        Ok(ParquetFileWriter {
            path,
            temp,
            writer,
            rows: 0,
        })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .map_err(|source| LayersError::Parquet {
                path: self.path.display().to_string(),
                source,
            })?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Finishes the file and moves it to its final path (refusing to replace a file that
    /// appeared there meanwhile).
    pub fn close(self) -> Result<WrittenFile> {
        let shown = self.path.display().to_string();
        let file = self
            .writer
            .into_inner()
            .map_err(|source| LayersError::Parquet {
                path: shown.clone(),
                source,
            })?;
        file.sync_all().map_err(|source| LayersError::Io {
            path: shown.clone(),
            source,
        })?;
        // hard_link fails if the target exists: an atomic create-only publish.
        std::fs::hard_link(&self.temp, &self.path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                LayersError::AlreadyExists {
                    path: shown.clone(),
                }
            } else {
                LayersError::Io {
                    path: shown.clone(),
                    source,
                }
            }
        })?;
        std::fs::remove_file(&self.temp).map_err(|source| LayersError::Io {
            path: self.temp.display().to_string(),
            source,
        })?;
        // The new name is durable only once its directory is synced.
        if let Some(dir) = self.path.parent() {
            crate::durable::sync_dir(dir).map_err(|source| LayersError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let bytes = std::fs::metadata(&self.path)
            .map_err(|source| LayersError::Io {
                path: shown,
                source,
            })?
            .len();
        Ok(WrittenFile {
            path: self.path,
            rows: self.rows,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])
            .expect("batch")
    }

    #[test]
    fn writes_readable_zstd_parquet_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/x.parquet");
        let b = batch();
        let mut w = ParquetFileWriter::create(&path, b.schema()).expect("create");
        w.write(&b).expect("write");
        w.write(&b).expect("write");
        let written = w.close().expect("close");
        assert_eq!(written.rows, 6);
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open"))
            .expect("reader");
        let meta = reader.metadata().clone();
        assert_eq!(meta.file_metadata().num_rows(), 6);
        assert!(matches!(
            meta.row_group(0).column(0).compression(),
            Compression::ZSTD(_)
        ));
        let again = ParquetFileWriter::create(&path, b.schema()).expect_err("must not overwrite");
        assert!(
            matches!(again, LayersError::AlreadyExists { .. }),
            "{again}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("out"))
                .expect("ls")
                .count(),
            1,
            "no temp file left"
        );
    }
}
