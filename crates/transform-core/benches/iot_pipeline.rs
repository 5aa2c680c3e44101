//! Throughput of `pipelines/iot.yaml` on one core: generated events with ~1% malformed lines
//! and ~1% duplicates, in batches of 8,192 records (the streaming driver's default).
//!
//! Run: `cargo bench -p strata-core --bench iot_pipeline` (figures in docs/performance.md).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_core::lineage::{file_batch, file_input_schema};
use strata_core::sample::{IotFaults, iot_events};
use strata_core::{BuildContext, Pipeline, PipelineSpec};

const EVENTS: usize = 200_000;
const BATCH: usize = 8_192;

fn bench(c: &mut Criterion) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/iot.yaml"
    ))
    .unwrap_or_else(|e| panic!("pipelines/iot.yaml: {e}"));
    let spec = PipelineSpec::from_yaml(&text).unwrap_or_else(|e| panic!("{e}"));
    let faults = IotFaults {
        malformed: 0.01,
        invalid: 0.0,
        duplicates: 0.01,
    };
    let lines = iot_events(EVENTS, 42, faults, 1_763_646_312_000);
    let batches: Vec<_> = lines
        .chunks(BATCH)
        .enumerate()
        .map(|(i, chunk)| {
            file_batch(chunk, "iot", "bench.ndjson", (i * BATCH) as u64 + 1, 0)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();

    let mut group = c.benchmark_group("iot_pipeline");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(20);
    group.bench_function("process_200k_events", |b| {
        b.iter(|| {
            let mut p = Pipeline::build(&spec, file_input_schema(), &BuildContext::default())
                .unwrap_or_else(|e| panic!("{e}"));
            let mut rows = 0;
            for batch in &batches {
                rows += p
                    .process(batch)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .num_rows();
            }
            rows += p.finish().unwrap_or_else(|e| panic!("{e}")).num_rows();
            black_box(rows)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
