"""The Python module against the real Rust pipeline: Arrow in (pyarrow, polars, DuckDB), pyarrow
out, typed errors, checkpoints that rebuild the pipeline."""

from __future__ import annotations

import pathlib

import pyarrow as pa
import pytest

import strata

import needs

ROOT = pathlib.Path(__file__).resolve().parents[3]
IOT_PATH = ROOT / "pipelines" / "iot.yaml"
IOT = IOT_PATH.read_text()
GOOD = (
    '{"device_id":"dev-00042","ts":"2026-11-20T13:45:12.123Z","seq":1,"temperature":21.5,'
    '"humidity":48.2,"battery":87,"location":{"lat":-23.5,"lon":-46.6,"site":"SP-01"},'
    '"tags":["a"],"owner_email":"ops@example.com"}'
)


def file_table(lines: list[str], first_line: int = 1) -> pa.Table:
    n = len(lines)
    return pa.Table.from_arrays(
        [
            pa.array([line.encode() for line in lines], pa.binary()),
            pa.array(["iot"] * n),
            pa.array([0] * n, pa.timestamp("us", tz="UTC")),
            pa.array(["py.ndjson"] * n),
            pa.array(range(first_line, first_line + n), pa.uint64()),
        ],
        schema=strata.file_input_schema(),
    )


def test_process_returns_tables_with_quarantine_and_metrics() -> None:
    p = strata.Pipeline.from_yaml(IOT)
    rows, quarantine = p.process(file_table([GOOD, "not json", GOOD]))
    assert isinstance(rows, pa.Table) and isinstance(quarantine, pa.Table)
    assert rows.num_rows == 1  # the third line is a duplicate
    assert rows.column("temp_f")[0].as_py() == pytest.approx(70.7)
    assert quarantine.num_rows == 1
    assert quarantine.column("_reason")[0].as_py().startswith("not valid JSON")
    assert quarantine.column("_line")[0].as_py() == 2
    m = p.metrics()
    assert (m["rows_in"], m["rows_out"], m["quarantined"]) == (3, 1, 1)
    assert "dedup" in p.plan()
    assert p.output_schema().names[:2] == ["device_id", "ts"]


def test_from_yaml_reads_a_path_too() -> None:
    by_path = strata.Pipeline.from_yaml(IOT_PATH)
    by_str = strata.Pipeline.from_yaml(str(IOT_PATH))
    assert by_path.name == by_str.name == "iot_events"


def test_polars_and_duckdb_data_go_in_through_the_capsule_interface() -> None:
    polars = needs.module("polars")
    duckdb = needs.module("duckdb")
    table = file_table([GOOD, "{"])
    frame = polars.from_arrow(table)
    rows, quarantine = strata.Pipeline.from_yaml(IOT).process(frame)
    assert (rows.num_rows, quarantine.num_rows) == (1, 1)
    con = duckdb.connect()
    con.register("raw", table)
    relation = con.sql("SELECT * FROM raw")
    rows, quarantine = strata.Pipeline.from_yaml(IOT).process(relation)
    assert (rows.num_rows, quarantine.num_rows) == (1, 1)
    # A reader is a stream as well.
    rows, _ = strata.Pipeline.from_yaml(IOT).process(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))
    assert rows.num_rows == 1
    with pytest.raises(TypeError, match="expected Arrow data"):
        strata.Pipeline.from_yaml(IOT).process([1, 2, 3])  # type: ignore[arg-type]


def test_checkpoint_restores_the_pipeline_and_its_dedup_state() -> None:
    p = strata.Pipeline.from_yaml(IOT)
    p.process(file_table([GOOD]))
    state = p.checkpoint()
    q = strata.Pipeline.restore(state)
    assert q.name == "iot_events"
    rows, _ = q.process(file_table([GOOD], first_line=2))
    assert rows.num_rows == 0  # already seen before the checkpoint
    assert q.metrics()["rows_in"] == 1


def test_a_foreign_or_corrupt_checkpoint_is_a_checkpoint_error() -> None:
    p = strata.Pipeline.from_yaml(IOT)
    p.process(file_table([GOOD]))
    state = bytearray(p.checkpoint())
    with pytest.raises(strata.CheckpointError, match="not a Strata Python checkpoint"):
        strata.Pipeline.restore(b"garbage")
    state[-1] ^= 0xFF
    with pytest.raises(strata.CheckpointError, match="corrupt"):
        strata.Pipeline.restore(bytes(state))
    newer = bytearray(p.checkpoint())
    newer[8] = 99
    with pytest.raises(strata.CheckpointError, match="version 99"):
        strata.Pipeline.restore(bytes(newer))


def test_errors_are_typed_python_exceptions() -> None:
    with pytest.raises(strata.SpecError, match="unknown column `nope`") as bad:
        strata.Pipeline(
            "name: x\nsteps:\n  - type: parse_json\n    schema: {a: int64}\n  - type: select\n    columns: [nope]\n"
            "output: {schema: {a: int64}}\n",
            input_schema=strata.file_input_schema(),
        )
    assert isinstance(bad.value, ValueError) and isinstance(bad.value, strata.StrataError)
    with pytest.raises(strata.SpecError):
        strata.Pipeline("name: [")
    p = strata.Pipeline(IOT, input_schema=strata.file_input_schema())
    with pytest.raises(strata.DataError, match="input batch schema"):
        p.process(pa.RecordBatch.from_pydict({"x": [1]}))
    with pytest.raises(strata.StateError):
        strata.Pipeline(IOT).finish()
    with pytest.raises(strata.ConfigError, match="unrecognized subcommand"):
        strata.run(["no-such-command"])


def test_a_stateful_pipeline_is_cut_before_its_dedup() -> None:
    plan = strata.partition_plan(IOT, strata.file_input_schema())
    assert plan.keys == ["device_id", "seq"] and plan.stateful_step == "dedup"
    assert plan.prefix is not None
    prefix = strata.Pipeline(plan.prefix, stage="prefix")
    middle, q1 = prefix.process(file_table([GOOD, "not json", GOOD]))
    assert "_strata_carried_raw" in middle.column_names
    assert "_strata_carried_raw" not in q1.column_names
    suffix = strata.Pipeline(plan.suffix, stage="suffix")
    rows, q2 = suffix.process(middle)
    whole, q = strata.Pipeline(IOT).process(file_table([GOOD, "not json", GOOD]))
    assert rows.equals(whole)
    assert pa.concat_tables([q1, q2]).equals(q)
