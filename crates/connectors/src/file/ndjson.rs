//! Streams newline-delimited records (NDJSON, or any line format) from a local file into
//! batches of [`strata_core::lineage::file_input_schema`], without loading the file whole.
//!
//! Batches are bounded by a record count and a byte budget, so memory does not depend on file
//! size. Every record keeps its 1-based line number. Blank lines are records too (the pipeline
//! quarantines them as empty): nothing in a file disappears silently. A truncated or corrupt
//! gzip / zstd stream ends the read with [`ConnectorError::Corrupt`] naming the last good line;
//! the batches already returned stay valid.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use arrow::array::RecordBatch;

use crate::error::{ConnectorError, Result};

pub use strata_core::line_format::Compression;
use strata_core::line_format::LineBatcher;

/// Batch bounds and lineage values.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Records per batch at most.
    pub batch_rows: usize,
    /// Raw bytes per batch at most (a single larger record still makes its own batch).
    pub batch_bytes: usize,
    /// Value of `_source`.
    pub source: String,
    /// Value of `_ingested_at` (microseconds since the epoch; injected for reproducibility).
    pub ingested_at_micros: i64,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            batch_rows: 8_192,
            batch_bytes: 8 << 20,
            source: "file".into(),
            ingested_at_micros: 0,
        }
    }
}

/// An iterator of record batches over one file.
pub struct NdjsonReader {
    reader: Box<dyn BufRead + Send>,
    file: String,
    compression: Compression,
    options: ReaderOptions,
    done: bool,
    lines: LineBatcher,
}

impl std::fmt::Debug for NdjsonReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonReader")
            .field("file", &self.file)
            .field("next_line", &self.lines.next_line())
            .finish()
    }
}

impl NdjsonReader {
    /// Opens `path`, detecting compression from its first bytes.
    pub fn open(path: impl AsRef<Path>, options: ReaderOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let io = |source| ConnectorError::Io {
            file: file.clone(),
            source,
            hint: "check the path and permissions",
        };
        let mut raw = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
        let compression = Compression::sniff(raw.fill_buf().map_err(io)?);
        let reader: Box<dyn BufRead + Send> = match compression {
            Compression::None => Box::new(raw),
            Compression::Gzip => Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::bufread::MultiGzDecoder::new(raw),
            )),
            Compression::Zstd => {
                let d = zstd::stream::read::Decoder::with_buffer(raw).map_err(io)?;
                Box::new(BufReader::with_capacity(1 << 20, d))
            }
        };
        Ok(Self::from_reader(reader, file, compression, options))
    }

    /// Reads from any buffered reader (already decompressed); `name` is used as `_file`.
    pub fn from_reader(
        reader: Box<dyn BufRead + Send>,
        name: String,
        compression: Compression,
        options: ReaderOptions,
    ) -> Self {
        NdjsonReader {
            reader,
            file: name,
            compression,
            lines: LineBatcher::new(options.batch_rows, options.batch_bytes),
            options,
            done: false,
        }
    }

    /// Lines delivered so far.
    pub fn lines_read(&self) -> u64 {
        self.lines.lines_delivered()
    }

    fn read_batch(&mut self) -> Result<Option<RecordBatch>> {
        while !self.done && !self.lines.is_full() {
            let mut line = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| self.read_error(e))?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.lines.push(line);
        }
        let first_line = self.lines.lines_delivered() + 1;
        self.lines
            .take(
                &self.options.source,
                &self.file,
                self.options.ingested_at_micros,
            )
            .map_err(|source| ConnectorError::Batch {
                file: self.file.clone(),
                line: first_line,
                source: Box::new(source),
            })
    }

    fn read_error(&mut self, e: std::io::Error) -> ConnectorError {
        self.done = true;
        match self.compression {
            Compression::None => ConnectorError::Io {
                file: self.file.clone(),
                source: e,
                hint: "the file became unreadable while reading",
            },
            c => ConnectorError::Corrupt {
                file: self.file.clone(),
                line: self.lines.next_line() - 1,
                compression: c.name(),
                message: e.to_string(),
            },
        }
    }
}

impl Iterator for NdjsonReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_batch().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    use arrow::array::Array;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).expect("write test file");
    }

    fn lines(n: usize) -> String {
        (0..n).map(|i| format!("{{\"i\":{i}}}\n")).collect()
    }

    fn all(reader: NdjsonReader) -> (Vec<RecordBatch>, Option<ConnectorError>) {
        let mut batches = Vec::new();
        for b in reader {
            match b {
                Ok(b) => batches.push(b),
                Err(e) => return (batches, Some(e)),
            }
        }
        (batches, None)
    }

    #[test]
    fn plain_gzip_and_zstd_read_the_same_records_with_line_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = lines(1000);
        let plain = dir.path().join("a.ndjson");
        write(&plain, text.as_bytes());
        let gz = dir.path().join("a.ndjson.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).expect("gzip");
        write(&gz, &enc.finish().expect("gzip"));
        let zst = dir.path().join("a.ndjson.zst");
        write(&zst, &zstd::encode_all(text.as_bytes(), 1).expect("zstd"));
        for path in [&plain, &gz, &zst] {
            let opts = ReaderOptions {
                batch_rows: 300,
                ..Default::default()
            };
            let (batches, err) = all(NdjsonReader::open(path, opts).expect("open"));
            assert!(err.is_none(), "{err:?}");
            assert_eq!(
                batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
                vec![300, 300, 300, 100]
            );
            let last = batches[3].column_by_name("_line").expect("_line");
            let last = last
                .as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
                .expect("u64");
            assert_eq!(last.value(99), 1000);
        }
    }

    #[test]
    fn byte_budget_bounds_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("big.ndjson");
        write(&p, lines(1000).as_bytes());
        let opts = ReaderOptions {
            batch_rows: 10_000,
            batch_bytes: 1000,
            ..Default::default()
        };
        let (batches, _) = all(NdjsonReader::open(&p, opts).expect("open"));
        assert!(batches.len() > 5);
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1000);
    }

    #[test]
    fn truncated_gzip_is_a_clear_error_after_the_good_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(lines(5000).as_bytes()).expect("gzip");
        let full = enc.finish().expect("gzip");
        let p = dir.path().join("cut.ndjson.gz");
        write(&p, &full[..full.len() / 2]);
        let (batches, err) = all(NdjsonReader::open(&p, ReaderOptions::default()).expect("open"));
        let err = err.expect("truncation must be reported");
        assert!(
            matches!(
                err,
                ConnectorError::Corrupt {
                    compression: "gzip",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("cut.ndjson.gz"), "{err}");
        assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() < 5000);
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = NdjsonReader::open("/nonexistent/x.ndjson", ReaderOptions::default())
            .expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/x.ndjson"), "{e}");
    }

    #[test]
    fn blank_lines_and_crlf_are_kept_as_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("crlf.ndjson");
        write(&p, b"{\"a\":1}\r\n\r\n{\"a\":2}");
        let (batches, _) = all(NdjsonReader::open(&p, ReaderOptions::default()).expect("open"));
        let raw = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::BinaryArray>()
            .expect("binary");
        assert_eq!(raw.len(), 3);
        assert_eq!(raw.value(0), b"{\"a\":1}");
        assert_eq!(raw.value(1), b"");
        assert_eq!(raw.value(2), b"{\"a\":2}");
    }
}
