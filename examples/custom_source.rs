//! Stage: a source of your own, embedded in a Rust service, run by Strata's one driver loop.
//!
//! An in-process inbox of device lines (what a gateway service might hold) is the source; the
//! shipped IoT pipeline and a Parquet sink do the rest. The inbox reports its offset as the
//! position, so the driver can commit and resume it like a Kafka partition.
//!
//! `cargo run -p strata-examples --example custom_source [events] [out-dir]`

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;
use strata_core::{BuildContext, Pipeline, PipelineSpec, lineage};
use strata_runtime::sinks::ParquetFilesSink;
use strata_runtime::{Driver, DriverOptions, Polled, Position, Result, Source};

/// Lines pushed by devices into an in-process queue; the offset is the position.
struct Inbox {
    lines: Vec<String>,
    next: usize,
}

#[async_trait::async_trait]
impl Source for Inbox {
    fn name(&self) -> String {
        "inbox".into()
    }
    fn schema(&self) -> SchemaRef {
        lineage::file_input_schema()
    }
    async fn seek(&mut self, at: Option<&Position>) -> Result<()> {
        let offsets = at.and_then(|p| p.kafka_offsets());
        self.next = offsets.and_then(|o| o.get(&0)).map_or(0, |o| *o as usize);
        Ok(())
    }
    async fn next(&mut self) -> Result<Polled> {
        if self.next >= self.lines.len() {
            return Ok(Polled::End);
        }
        let end = (self.next + 1000).min(self.lines.len());
        let lines = &self.lines[self.next..end];
        let batch = lineage::file_batch(lines, "inbox", "inbox", self.next as u64 + 1, 0)?;
        self.next = end;
        let position = Position::kafka(BTreeMap::from([(0, end as i64)]));
        Ok(Polled::Batch {
            batch,
            position: Some(position),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let events: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| "out/custom_source".into()));
    let spec = PipelineSpec::from_yaml(include_str!("../pipelines/iot.yaml"))?;
    let faults = strata_core::sample::IotFaults::default();
    let lines = strata_core::sample::iot_events(events, 1, faults, 1_763_646_312_000);
    let source = Inbox { lines, next: 0 };
    let pipeline = Pipeline::build(&spec, source.schema(), &BuildContext::default())?;
    let sink = ParquetFilesSink::create(
        &out.join("rows.parquet"),
        pipeline.output_schema(),
        &out.join("quarantine.parquet"),
        pipeline.quarantine_schema(),
    )?;
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = Driver::new(source, pipeline, sink, DriverOptions::default())
        .run(stop)
        .await?;
    let m = &report.metrics;
    println!(
        "{} events in, {} rows out, {} quarantined, {} commits → {}",
        m.rows_in,
        m.rows_out,
        m.quarantined,
        report.commits,
        out.display()
    );
    Ok(())
}
