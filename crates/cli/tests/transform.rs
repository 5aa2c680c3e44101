//! `strata` as a user runs it: real files in, real Parquet out, read back with the parquet crate.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn strata() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    c
}

fn parquet_rows(path: &Path) -> usize {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open parquet"))
        .expect("parquet");
    reader.metadata().file_metadata().num_rows() as usize
}

fn find(dir: &Path, suffix: &str) -> PathBuf {
    for entry in walk(dir) {
        if entry.to_string_lossy().ends_with(suffix) {
            return entry;
        }
    }
    panic!("no *{suffix} under {}", dir.display());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[test]
fn generate_then_transform_accounts_for_every_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("iot.ndjson.zst");
    let gen_out = strata()
        .args([
            "generate",
            "iot",
            "--events",
            "20000",
            "--malformed",
            "0.01",
            "--invalid",
            "0.01",
            "--duplicates",
            "0.02",
            "--out",
        ])
        .arg(&input)
        .output()
        .expect("run generate");
    assert!(
        gen_out.status.success(),
        "{}",
        String::from_utf8_lossy(&gen_out.stderr)
    );

    let out_dir = dir.path().join("out");
    let run = strata()
        .args([
            "transform",
            "--pipeline",
            "pipelines/iot.yaml",
            "--json",
            "--input",
        ])
        .arg(&input)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run transform");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON summary");
    let m = &summary["metrics"];
    let (rows_in, rows_out, quarantined, dropped) = (
        m["rows_in"].as_u64().unwrap_or(0) as usize,
        m["rows_out"].as_u64().unwrap_or(0) as usize,
        m["quarantined"].as_u64().unwrap_or(0) as usize,
        m["dropped"].as_u64().unwrap_or(0) as usize,
    );
    assert_eq!(rows_in, 20_000);
    assert_eq!(
        rows_out + quarantined + dropped,
        rows_in,
        "nothing lost: {m}"
    );
    assert!(quarantined > 200 && quarantined < 800, "{m}");
    assert!(dropped > 100, "duplicates are dropped: {m}");
    assert_eq!(
        parquet_rows(&find(&out_dir, "iot_events.parquet")),
        rows_out
    );
    assert_eq!(
        parquet_rows(&find(&out_dir, "iot_events_quarantine.parquet")),
        quarantined
    );
}

#[test]
fn a_bad_spec_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("bad.yaml");
    std::fs::write(&spec, "name: x\nsteps:\n  - type: parse_json\n    schema: {a: int64}\n  - type: filter\n    where: nope > 1\noutput: {schema: {a: int64}}\n")
        .expect("write spec");
    let out = strata()
        .arg("validate")
        .arg("--pipeline")
        .arg(&spec)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("steps[1] (filter)") && err.contains("nope"),
        "{err}"
    );
}

#[test]
fn a_truncated_input_exits_1_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("cut.ndjson.gz");
    let gen_out = strata()
        .args(["generate", "iot", "--events", "5000", "--out"])
        .arg(&input)
        .output()
        .expect("generate");
    assert!(gen_out.status.success());
    let bytes = std::fs::read(&input).expect("read");
    std::fs::write(&input, &bytes[..bytes.len() / 2]).expect("truncate");
    let out = strata()
        .args(["transform", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut.ndjson.gz") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn plan_prints_each_step_schema() {
    let out = strata()
        .args(["plan", "--pipeline", "pipelines/iot.yaml"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("flatten (flatten) ->") && text.contains("location_lat float64"),
        "{text}"
    );
}
