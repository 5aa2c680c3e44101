//! Shared helpers for strata-core integration tests.
#![allow(dead_code)]

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use strata_core::lineage::{file_batch, file_input_schema};
use strata_core::{BuildContext, Output, Pipeline, PipelineSpec};

pub const INGESTED_AT: i64 = 1_763_650_000_000_000;

pub fn iot_spec() -> PipelineSpec {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/iot.yaml"
    ))
    .expect("pipelines/iot.yaml is readable");
    PipelineSpec::from_yaml(&text).expect("iot.yaml parses")
}

pub fn build(spec: &PipelineSpec) -> Pipeline {
    Pipeline::build(spec, file_input_schema(), &BuildContext::default()).expect("pipeline builds")
}

pub fn build_yaml(yaml: &str) -> strata_core::Result<Pipeline> {
    let spec = PipelineSpec::from_yaml(yaml)?;
    Pipeline::build(&spec, file_input_schema(), &BuildContext::default())
}

pub fn input(lines: &[String], first_line: u64) -> RecordBatch {
    file_batch(lines, "iot", "test.ndjson", first_line, INGESTED_AT).expect("input batch")
}

/// Everything a run produced, concatenated: (rows, quarantine).
pub struct Collected {
    pub rows: Vec<RecordBatch>,
    pub quarantine: Vec<RecordBatch>,
}

impl Collected {
    pub fn new() -> Self {
        Collected {
            rows: Vec::new(),
            quarantine: Vec::new(),
        }
    }

    pub fn add(&mut self, out: Output) {
        self.rows
            .extend(out.rows.into_iter().filter(|b| b.num_rows() > 0));
        if out.quarantined.num_rows() > 0 {
            self.quarantine.push(out.quarantined);
        }
    }

    pub fn rows_text(&self) -> String {
        pretty_format_batches(&self.rows)
            .expect("printable")
            .to_string()
    }

    pub fn quarantine_text(&self) -> String {
        pretty_format_batches(&self.quarantine)
            .expect("printable")
            .to_string()
    }

    pub fn num_rows(&self) -> usize {
        self.rows.iter().map(|b| b.num_rows()).sum()
    }

    pub fn num_quarantined(&self) -> usize {
        self.quarantine.iter().map(|b| b.num_rows()).sum()
    }
}

/// Runs `lines` through `pipeline` in chunks of the given sizes (the rest in a last chunk).
pub fn run_chunks(pipeline: &mut Pipeline, lines: &[String], sizes: &[usize]) -> Collected {
    let mut c = Collected::new();
    let mut start = 0;
    for &s in sizes {
        let end = (start + s).min(lines.len());
        c.add(
            pipeline
                .process(&input(&lines[start..end], start as u64 + 1))
                .expect("process"),
        );
        start = end;
    }
    if start < lines.len() || lines.is_empty() {
        c.add(
            pipeline
                .process(&input(&lines[start..], start as u64 + 1))
                .expect("process"),
        );
    }
    c.add(pipeline.finish().expect("finish"));
    c
}
