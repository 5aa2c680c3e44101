"""The Python module against the real Rust pipeline: pyarrow in, pyarrow out."""
import json
import pathlib

import pyarrow as pa
import pytest

import strata

ROOT = pathlib.Path(__file__).resolve().parents[3]
IOT = (ROOT / "pipelines" / "iot.yaml").read_text()
GOOD = (
    '{"device_id":"dev-00042","ts":"2026-11-20T13:45:12.123Z","seq":1,"temperature":21.5,'
    '"humidity":48.2,"battery":87,"location":{"lat":-23.5,"lon":-46.6,"site":"SP-01"},'
    '"tags":["a"],"owner_email":"ops@example.com"}'
)


def file_batch(lines):
    schema = strata.file_input_schema()
    n = len(lines)
    return pa.RecordBatch.from_arrays(
        [
            pa.array([l.encode() for l in lines], pa.binary()),
            pa.array(["iot"] * n),
            pa.array([0] * n, pa.timestamp("us", tz="UTC")),
            pa.array(["py.ndjson"] * n),
            pa.array(range(1, n + 1), pa.uint64()),
        ],
        schema=schema,
    )


def test_process_quarantine_and_metrics():
    p = strata.Pipeline(IOT)
    rows, quarantined = p.process(file_batch([GOOD, "not json", GOOD]))
    table = pa.Table.from_batches(rows)
    assert table.num_rows == 1  # the third line is a duplicate
    assert table.column("temp_f")[0].as_py() == pytest.approx(70.7)
    assert quarantined.num_rows == 1
    assert quarantined.column("_reason")[0].as_py().startswith("not valid JSON")
    assert quarantined.column("_line")[0].as_py() == 2
    m = json.loads(p.metrics_json())
    assert (m["rows_in"], m["rows_out"], m["quarantined"]) == (3, 1, 1)


def test_checkpoint_restore_keeps_dedup_state():
    p = strata.Pipeline(IOT)
    p.process(file_batch([GOOD]))
    state = p.checkpoint()
    q = strata.Pipeline(IOT, input_schema=strata.file_input_schema())
    q.restore(state)
    rows, _ = q.process(file_batch([GOOD]))
    assert sum(b.num_rows for b in rows) == 0


def test_errors_are_python_exceptions():
    with pytest.raises(strata.SpecError, match="unknown column `nope`"):
        strata.Pipeline(
            "name: x\nsteps:\n  - type: parse_json\n    schema: {a: int64}\n  - type: select\n    columns: [nope]\n"
            "output: {schema: {a: int64}}\n",
            input_schema=strata.file_input_schema(),
        )
    with pytest.raises(strata.SpecError):
        strata.Pipeline("name: [")
    p = strata.Pipeline(IOT, input_schema=strata.file_input_schema())
    with pytest.raises(strata.CheckpointError):
        p.restore(b"garbage")
    with pytest.raises(strata.DataError, match="input batch schema"):
        p.process(pa.RecordBatch.from_pydict({"x": [1]}))
