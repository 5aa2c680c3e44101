//! The pipeline alone, in Rust: NDJSON lines read into memory as file batches of BATCH_ROWS, then
//! timed through `Pipeline::process` + `finish`. The baseline `bench/python_overhead.py`
//! compares the Python wheel with (same batches, same pipeline, same machine).
//!
//!     cargo build --release --bin pipeline_throughput
//!     $CARGO_TARGET_DIR/release/pipeline_throughput pipelines/iot.yaml events.ndjson [BATCH_ROWS]
//!
//! Prints one JSON line: rows in, rows out, quarantined, seconds.

use std::io::BufRead;
use std::time::Instant;

use strata_core::lineage::{file_batch, file_input_schema};
use strata_core::{BuildContext, Pipeline, PipelineSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(spec), Some(input)) = (args.get(1), args.get(2)) else {
        return Err("usage: pipeline_throughput <spec.yaml> <events.ndjson> [batch rows]".into());
    };
    let batch_rows: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(8192);
    let spec = PipelineSpec::from_yaml(&std::fs::read_to_string(spec)?)?;
    let file = std::io::BufReader::new(std::fs::File::open(input)?);
    let lines: Vec<String> = file.lines().collect::<Result<_, _>>()?;
    let mut batches = Vec::new();
    for (i, chunk) in lines.chunks(batch_rows.max(1)).enumerate() {
        let first = (i * batch_rows.max(1)) as u64 + 1;
        batches.push(file_batch(chunk, "iot", "events.ndjson", first, 0)?);
    }
    let started = Instant::now();
    let mut pipeline = Pipeline::build(&spec, file_input_schema(), &BuildContext::default())?;
    let (mut out, mut quarantined) = (0usize, 0usize);
    for batch in &batches {
        let o = pipeline.process(batch)?;
        out += o.rows.iter().map(|b| b.num_rows()).sum::<usize>();
        quarantined += o.quarantined.num_rows();
    }
    let o = pipeline.finish()?;
    out += o.rows.iter().map(|b| b.num_rows()).sum::<usize>();
    quarantined += o.quarantined.num_rows();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"rows_in\": {}, \"rows_out\": {out}, \"quarantined\": {quarantined}, \"seconds\": {seconds:.4}}}",
        lines.len()
    );
    Ok(())
}
