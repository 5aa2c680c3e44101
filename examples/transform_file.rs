//! Stage: transform — one NDJSON file through a pipeline into Parquet, with the library API.
//!
//! ```text
//! cargo run -p strata-examples --example transform_file -- [pipeline.yaml] [input.ndjson] [out-dir]
//! ```
//! Defaults: `pipelines/iot.yaml`, `samples/iot_events.ndjson`, `out/example`.

use std::path::PathBuf;

use anyhow::Context;
use strata_connectors::file::{NdjsonReader, ReaderOptions};
use strata_core::lineage::file_input_schema;
use strata_core::{BuildContext, Pipeline, PipelineSpec};
use strata_layers::parquet_file::ParquetFileWriter;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let pipeline_path = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("pipelines/iot.yaml"));
    let input = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("samples/iot_events.ndjson"));
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("out/example"));

    let spec = PipelineSpec::from_yaml(
        &std::fs::read_to_string(&pipeline_path).context("reading the pipeline")?,
    )?;
    let mut pipeline = Pipeline::build(&spec, file_input_schema(), &BuildContext::default())?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let mut rows = ParquetFileWriter::create(
        out.join(format!("{stamp}-rows.parquet")),
        pipeline.output_schema(),
    )?;
    let mut quarantine = ParquetFileWriter::create(
        out.join(format!("{stamp}-quarantine.parquet")),
        pipeline.quarantine_schema(),
    )?;

    let options = ReaderOptions {
        source: spec.name.clone(),
        ..ReaderOptions::default()
    };
    for batch in NdjsonReader::open(&input, options)? {
        let output = pipeline.process(&batch?)?;
        for b in &output.rows {
            rows.write(b)?;
        }
        quarantine.write(&output.quarantined)?;
    }
    let rest = pipeline.finish()?;
    for b in &rest.rows {
        rows.write(b)?;
    }
    let (rows, quarantine) = (rows.close()?, quarantine.close()?);
    let m = pipeline.metrics();
    println!(
        "{} lines → {} rows ({}), {} quarantined ({}), {} duplicates dropped",
        m.rows_in,
        rows.rows,
        rows.path.display(),
        quarantine.rows,
        quarantine.path.display(),
        m.duplicates()
    );
    Ok(())
}
