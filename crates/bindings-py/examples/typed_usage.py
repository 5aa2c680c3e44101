"""A typed use of the `strata` package: `mypy --strict` checks it against the shipped stubs
(tests/test_wheel.py)."""

from __future__ import annotations

import pathlib

import pyarrow as pa

import strata


def clean(lines: list[bytes], spec: pathlib.Path) -> tuple[pa.Table, pa.Table]:
    """Runs raw NDJSON lines through a pipeline: (rows, quarantine)."""
    n = len(lines)
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(lines, pa.binary()),
            pa.array(["example"] * n),
            pa.array([0] * n, pa.timestamp("us", tz="UTC")),
            pa.array(["example.ndjson"] * n),
            pa.array(range(1, n + 1), pa.uint64()),
        ],
        schema=strata.file_input_schema(),
    )
    pipeline = strata.Pipeline.from_yaml(spec)
    rows, quarantine = pipeline.process(batch)
    tail_rows, tail_quarantine = pipeline.finish()
    state: bytes = pipeline.checkpoint()
    restored = strata.Pipeline.restore(state)
    assert restored.name == pipeline.name
    return pa.concat_tables([rows, tail_rows]), pa.concat_tables([quarantine, tail_quarantine])


def newest_hours(lake_root: str) -> int:
    """Counts gold rows of one device through a pushed-down filter."""
    lake = strata.Lake(lake_root)
    try:
        reader = lake.read("gold.agg_device_hourly", filter="device_id = 'dev-00001'", columns=["hour"])
    except strata.LakeError:
        return 0
    return sum(batch.num_rows for batch in reader)
