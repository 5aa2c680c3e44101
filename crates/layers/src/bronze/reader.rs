//! The bronze reader: lists files by source and date range, and streams them in bounded batches
//! with `_file` / `_line` lineage — never a whole file in memory. NDJSON files (plain, gzip or
//! zstd) give raw records (`_raw`, for a pipeline that starts with `parse_json`); Parquet files
//! (full loads) give their own typed columns, `_line` being the 1-based row number.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use futures::StreamExt;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufReader as StoreReader;
use object_store::path::Path;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStream};
use strata_core::line_format::{Compression, LineBatcher, is_parquet_magic};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use super::names::{BronzeDate, validate_source};
use crate::error::{LayersError, Result};
use crate::lake::Lake;

/// One bronze object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BronzeFile {
    /// Full object path.
    pub path: Path,
    /// Path below the lake root (`bronze/source=…/date=…/name`), used as `_file`.
    pub relative: String,
    /// Its source.
    pub source: String,
    /// Its date partition.
    pub date: BronzeDate,
    /// Size in bytes.
    pub size: u64,
}

/// Lists and reads bronze files.
#[derive(Debug, Clone)]
pub struct BronzeReader {
    lake: Lake,
}

impl BronzeReader {
    /// A reader over `lake`.
    pub fn new(lake: Lake) -> Self {
        BronzeReader { lake }
    }

    /// The lake it reads.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Files of `source` whose date is within `[from, to]` (both optional), sorted by date then
    /// name — the order sources wrote them.
    pub async fn list(
        &self,
        source: &str,
        from: Option<BronzeDate>,
        to: Option<BronzeDate>,
    ) -> Result<Vec<BronzeFile>> {
        validate_source(source)?;
        let source_part = format!("source={source}");
        let prefix = self.lake.path(["bronze", source_part.as_str()]);
        let store = self.lake.store();
        let shown = self.lake.relative(&prefix);
        let listing = store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|source| LayersError::Store {
                path: shown.clone(),
                source,
            })?;
        let mut dates = Vec::new();
        for p in listing.common_prefixes {
            let Some(last) = p.filename() else { continue };
            if last == super::loads::LOADS_FOLDER {
                continue;
            }
            let Some(text) = last.strip_prefix("date=") else {
                continue;
            };
            // A folder that is not a valid date was not written by Strata: skip it loudly.
            let Ok(date) = BronzeDate::parse(text) else {
                return Err(LayersError::BronzeName {
                    kind: "date folder",
                    value: self.lake.relative(&p),
                    problem: "is not a YYYY-MM-DD partition; move it out of bronze/".into(),
                });
            };
            if from.is_none_or(|f| date >= f) && to.is_none_or(|t| date <= t) {
                dates.push((date, p));
            }
        }
        dates.sort();
        let mut files = Vec::new();
        for (date, p) in dates {
            let mut objects: Vec<_> =
                store
                    .list(Some(&p))
                    .try_collect()
                    .await
                    .map_err(|source| LayersError::Store {
                        path: self.lake.relative(&p),
                        source,
                    })?;
            objects.sort_by(|a, b| a.location.cmp(&b.location));
            // Media blobs (`date=…/media/`) travel as metadata records of `<source>.media`,
            // never as records of the source itself.
            let media = p.clone().join(super::MEDIA_FOLDER);
            for o in objects
                .into_iter()
                .filter(|o| !o.location.prefix_matches(&media))
            {
                files.push(BronzeFile {
                    relative: self.lake.relative(&o.location),
                    path: o.location,
                    source: source.to_string(),
                    date,
                    size: o.size,
                });
            }
        }
        Ok(files)
    }

    /// True for a Parquet (typed) bronze file.
    pub fn is_parquet(file: &BronzeFile) -> bool {
        file.relative.ends_with(".parquet")
    }

    async fn parquet_builder(
        &self,
        file: &BronzeFile,
    ) -> Result<ParquetRecordBatchStreamBuilder<ParquetObjectReader>> {
        let reader = ParquetObjectReader::new(self.lake.store().clone(), file.path.clone())
            .with_file_size(file.size);
        ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(|source| LayersError::Parquet {
                path: file.relative.clone(),
                source,
            })
    }

    /// The schema batches of `file` have: `_raw` + lineage for NDJSON, the file's own columns +
    /// lineage for Parquet (the pipeline is built against it).
    pub async fn input_schema(&self, file: &BronzeFile) -> Result<SchemaRef> {
        if !Self::is_parquet(file) {
            return Ok(strata_core::lineage::file_input_schema());
        }
        let builder = self.parquet_builder(file).await?;
        Ok(typed_input_schema(builder.schema()))
    }

    /// Opens a bronze file for streaming: NDJSON (compression from the name) or Parquet.
    /// Batches hold at most `batch_rows` records and, for NDJSON, stop growing once their raw
    /// bytes reach `batch_bytes`.
    pub async fn open(
        &self,
        file: &BronzeFile,
        batch_rows: usize,
        batch_bytes: usize,
        ingested_at_micros: i64,
    ) -> Result<BronzeFileReader> {
        // A read keeps its partition warm (see crate::cooling).
        crate::access::record_read(
            &self.lake,
            &format!("bronze.{}/date={}", file.source, file.date),
        )
        .await;
        if Self::is_parquet(file) {
            let builder = self.parquet_builder(file).await?;
            let schema = typed_input_schema(builder.schema());
            let stream = builder
                .with_batch_size(batch_rows.max(1))
                .build()
                .map_err(|source| LayersError::Parquet {
                    path: file.relative.clone(),
                    source,
                })?;
            return Ok(BronzeFileReader {
                body: Body::Parquet {
                    stream: Box::new(stream),
                    schema,
                },
                compression: "parquet",
                file: file.clone(),
                lines: LineBatcher::new(batch_rows, batch_bytes),
                ingested_at_micros,
                next_line: 1,
                done: false,
            });
        }
        let meta =
            self.lake
                .store()
                .head(&file.path)
                .await
                .map_err(|source| LayersError::Store {
                    path: file.relative.clone(),
                    source,
                })?;
        let mut raw = BufReader::with_capacity(
            1 << 20,
            StoreReader::with_capacity(self.lake.store().clone(), &meta, 4 << 20),
        );
        // The content decides, not the name: Kafka Connect's S3 sink writes `.json`, Firehose
        // writes no extension, and a gzip stream may be named anything.
        let head = raw
            .fill_buf()
            .await
            .map_err(|e| LayersError::Corrupt {
                path: file.relative.clone(),
                line: 0,
                compression: "plain",
                message: e.to_string(),
            })?
            .to_vec();
        let compression = Compression::sniff(&head);
        let mut lines: Pin<Box<dyn AsyncBufRead + Send>> = match compression {
            Compression::Zstd => Box::pin(BufReader::new(ZstdDecoder::new(raw))),
            Compression::Gzip => {
                let mut d = GzipDecoder::new(raw);
                d.multiple_members(true);
                Box::pin(BufReader::new(d))
            }
            Compression::None => Box::pin(raw),
        };
        let first = lines.fill_buf().await.map_err(|e| LayersError::Corrupt {
            path: file.relative.clone(),
            line: 0,
            compression: compression.name(),
            message: e.to_string(),
        })?;
        if let Some(found) = not_json_lines(&file.relative, first) {
            return Err(LayersError::NotLineFormat {
                path: file.relative.clone(),
                found,
            });
        }
        Ok(BronzeFileReader {
            body: Body::Lines(lines),
            compression: compression.name(),
            file: file.clone(),
            lines: LineBatcher::new(batch_rows, batch_bytes),
            ingested_at_micros,
            next_line: 1,
            done: false,
        })
    }
}

/// Why the first (decompressed) bytes of `name` are not JSON lines, or `None` when they are.
/// A name that says NDJSON is always read as lines (bad lines are quarantined one by one); any
/// other name must start with a JSON value, so a stray binary object is refused, not quarantined
/// line by line.
fn not_json_lines(name: &str, first: &[u8]) -> Option<String> {
    if is_parquet_magic(first) {
        return Some("it is Parquet; name it .parquet".into());
    }
    let base = name
        .trim_end_matches(".gz")
        .trim_end_matches(".gzip")
        .trim_end_matches(".zst");
    if [".ndjson", ".jsonl", ".json", ".ldjson"]
        .iter()
        .any(|ext| base.ends_with(ext))
    {
        return None;
    }
    let start = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(first);
    match start.iter().find(|b| !b.is_ascii_whitespace()) {
        None | Some(b'{') | Some(b'[') => None,
        Some(b) => Some(format!(
            "its content starts with byte 0x{b:02x}, not a JSON value"
        )),
    }
}

/// `schema`'s columns followed by the file lineage columns (no `_raw`: the record is typed).
fn typed_input_schema(schema: &SchemaRef) -> SchemaRef {
    let lineage = strata_core::lineage::file_input_schema();
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields.extend(
        lineage
            .fields()
            .iter()
            .filter(|f| f.name() != strata_core::lineage::RAW)
            .cloned(),
    );
    Arc::new(Schema::new(fields))
}

enum Body {
    Lines(Pin<Box<dyn AsyncBufRead + Send>>),
    Parquet {
        stream: Box<ParquetRecordBatchStream<ParquetObjectReader>>,
        schema: SchemaRef,
    },
}

/// Streams one bronze file as batches (see [`BronzeReader::input_schema`] for their schema).
pub struct BronzeFileReader {
    body: Body,
    compression: &'static str,
    file: BronzeFile,
    lines: LineBatcher,
    ingested_at_micros: i64,
    next_line: u64,
    done: bool,
}

impl std::fmt::Debug for BronzeFileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BronzeFileReader")
            .field("file", &self.file.relative)
            .field("next_line", &self.next_line)
            .finish()
    }
}

impl BronzeFileReader {
    /// The next batch, or `None` at the end of the file.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let lines = match &mut self.body {
            Body::Lines(lines) => lines,
            Body::Parquet { stream, schema } => {
                let Some(next) = stream.next().await else {
                    return Ok(None);
                };
                let batch = next.map_err(|source| LayersError::Parquet {
                    path: self.file.relative.clone(),
                    source,
                })?;
                let schema = schema.clone();
                return self.with_lineage(batch, schema).map(Some);
            }
        };
        while !self.done && !self.lines.is_full() {
            let mut line = Vec::new();
            let n = match lines.read_until(b'\n', &mut line).await {
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    return Err(LayersError::Corrupt {
                        path: self.file.relative.clone(),
                        line: self.lines.next_line() - 1,
                        compression: self.compression,
                        message: e.to_string(),
                    });
                }
            };
            if n == 0 {
                self.done = true;
                break;
            }
            self.lines.push(line);
        }
        self.lines
            .take(
                &self.file.source,
                &self.file.relative,
                self.ingested_at_micros,
            )
            .map_err(|e| LayersError::Internal(e.to_string()))
    }

    /// Appends the lineage columns to a typed (Parquet) batch.
    fn with_lineage(&mut self, batch: RecordBatch, schema: SchemaRef) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let first = self.next_line;
        self.next_line += n as u64;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec![
            self.file.source.as_str();
            n
        ])));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(vec![self.ingested_at_micros; n]).with_timezone("UTC"),
        ));
        columns.push(Arc::new(StringArray::from(vec![
            self.file.relative.as_str();
            n
        ])));
        columns.push(Arc::new(UInt64Array::from_iter_values(
            first..first + n as u64,
        )));
        RecordBatch::try_new(schema, columns).map_err(|e| {
            LayersError::Internal(format!("adding lineage to {}: {e}", self.file.relative))
        })
    }
}
