"""Python overhead of the wheel over pure Rust: the same NDJSON lines, as the same file batches,
through the same pipeline (`pipelines/iot.yaml`), timed around process + finish only.

    cargo build --release --bin strata --bin pipeline_throughput
    (cd crates/bindings-py && maturin build --release -o /tmp/wheels) && pip install /tmp/wheels/*.whl
    $CARGO_TARGET_DIR/release/strata generate iot --events 2000000 --out /tmp/iot2m.ndjson
    python bench/python_overhead.py /tmp/iot2m.ndjson [runs]

Prints the best of `runs` for each side and the overhead.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pyarrow as pa

import strata

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = ROOT / "pipelines" / "iot.yaml"
BATCH_ROWS = int(os.environ.get("BATCH_ROWS", "8192"))


def python_run(batches: list[pa.RecordBatch]) -> tuple[float, int, int]:
    started = time.perf_counter()
    pipeline = strata.Pipeline.from_yaml(SPEC)
    out = quarantined = 0
    for batch in batches:
        rows, q = pipeline.process(batch)
        out += rows.num_rows
        quarantined += q.num_rows
    rows, q = pipeline.finish()
    out += rows.num_rows
    quarantined += q.num_rows
    return time.perf_counter() - started, out, quarantined


def main() -> None:
    path = pathlib.Path(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    target = os.environ.get("CARGO_TARGET_DIR", str(pathlib.Path.home() / ".cache/strata/target"))
    rust_bin = pathlib.Path(target) / "release" / "pipeline_throughput"
    lines = path.read_bytes().splitlines()
    schema = strata.file_input_schema()
    batches = []
    for start in range(0, len(lines), BATCH_ROWS):
        chunk = lines[start : start + BATCH_ROWS]
        n = len(chunk)
        batches.append(
            pa.RecordBatch.from_arrays(
                [
                    pa.array(chunk, pa.binary()),
                    pa.array(["iot"] * n),
                    pa.array([0] * n, pa.timestamp("us", tz="UTC")),
                    pa.array(["events.ndjson"] * n),
                    pa.array(range(start + 1, start + n + 1), pa.uint64()),
                ],
                schema=schema,
            )
        )
    rust = []
    for _ in range(runs):
        out = subprocess.run([str(rust_bin), str(SPEC), str(path), str(BATCH_ROWS)], check=True, capture_output=True, text=True)
        rust.append(json.loads(out.stdout))
    py = [python_run(batches) for _ in range(runs)]
    best_rust = min(r["seconds"] for r in rust)
    best_py = min(p[0] for p in py)
    same = (rust[0]["rows_out"], rust[0]["quarantined"]) == py[0][1:]
    print(
        json.dumps(
            {
                "events": len(lines),
                "rust_seconds": best_rust,
                "python_seconds": round(best_py, 4),
                "overhead_pct": round((best_py / best_rust - 1) * 100, 2),
                "rust_rows_out": rust[0]["rows_out"],
                "python_rows_out": py[0][1],
                "same_counts": same,
            }
        )
    )


if __name__ == "__main__":
    main()
