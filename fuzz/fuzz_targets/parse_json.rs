//! NDJSON lines through the `parse_json` step (typed schema with nested structs, lists,
//! timestamps, decimals) and the quarantine: any bytes, never a panic, every line either a row
//! or a quarantined record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use strata_core::lineage::{file_batch, file_input_schema};
use strata_core::{BuildContext, Pipeline, PipelineSpec};

const SPEC: &str = "name: fuzz\nsteps:\n  - type: parse_json\n    schema:\n      id: string not null\n      ts: timestamp\n      n: int64\n      f: float64\n      b: boolean\n      d: decimal(12,3)\n      day: date\n      s: struct<a int32, b list<string>, c struct<x double>>\n      l: list<struct<k string, v int64>>\n      m: string\noutput:\n  schema:\n    id: string not null\n    ts: timestamp\n    n: int64\n    f: float64\n    b: boolean\n    d: decimal(12,3)\n    day: date\n    s: struct<a int32, b list<string>, c struct<x double>>\n    l: list<struct<k string, v int64>>\n    m: string\n";

fn spec() -> &'static PipelineSpec {
    static S: OnceLock<PipelineSpec> = OnceLock::new();
    S.get_or_init(|| PipelineSpec::from_yaml(SPEC).expect("spec"))
}

fuzz_target!(
    init: {
        // Panics our guards catch (third-party parsers that panic on bad input) are not
        // findings; libfuzzer-sys' own hook would abort on them before they unwind. A panic
        // that escapes still aborts (libfuzzer-sys catches it at the top) and is kept as a
        // crash. `STRATA_FUZZ_SHOW_PANICS=1` prints them.
        if std::env::var_os("STRATA_FUZZ_SHOW_PANICS").is_none() {
            std::panic::set_hook(Box::new(|_| {}));
        }
    },
    |data: &[u8]| {
    let Ok(mut pipeline) = Pipeline::build(spec(), file_input_schema(), &BuildContext::default())
    else {
        return;
    };
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let Ok(batch) = file_batch(&lines, "fuzz", "fuzz.ndjson", 1, 0) else {
        return;
    };
    if let Ok(out) = pipeline.process(&batch) {
        let rows: usize = out.rows.iter().map(|b| b.num_rows()).sum();
        let quarantined = out.quarantined.num_rows();
        assert_eq!(rows + quarantined, lines.len(), "a line vanished");
    }
    let _ = pipeline.finish();
    }
);
