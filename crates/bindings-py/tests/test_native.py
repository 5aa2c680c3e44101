"""What only a native extension can get wrong: the GIL is released while Rust works (two
threads use two cores), and Arrow data crosses the boundary without copies."""

from __future__ import annotations

import json
import os
import pathlib
import random
import threading
import time

import pyarrow as pa

import strata

ROOT = pathlib.Path(__file__).resolve().parents[3]
IOT = (ROOT / "pipelines" / "iot.yaml").read_text()


def iot_table(n: int, seed: int) -> pa.Table:
    rnd = random.Random(seed)
    lines = [
        json.dumps(
            {
                "device_id": f"dev-{rnd.randrange(1000):05d}",
                "ts": f"2026-11-20T13:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}Z",
                "seq": i,
                "temperature": str(rnd.uniform(-10, 40)),
                "humidity": rnd.uniform(0, 100),
                "battery": rnd.randrange(100),
                "location": {"lat": -23.5, "lon": -46.6, "site": f"S-{rnd.randrange(9)}"},
                "tags": ["a", "b"],
                "owner_email": f"user{i}@example.com",
            }
        ).encode()
        for i in range(n)
    ]
    return pa.Table.from_arrays(
        [
            pa.array(lines, pa.binary()),
            pa.array(["iot"] * n),
            pa.array([0] * n, pa.timestamp("us", tz="UTC")),
            pa.array(["t.ndjson"] * n),
            pa.array(range(1, n + 1), pa.uint64()),
        ],
        schema=strata.file_input_schema(),
    )


def test_python_runs_while_rust_works() -> None:
    """While one thread is inside process(), another thread keeps running Python: the GIL is
    released. (Held, the counting thread would stop for the whole call.)"""
    table = iot_table(60_000, 1)
    done = threading.Event()

    def count_for(seconds: float) -> int:
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            n += 1
        return n

    alone = count_for(0.5)
    worker = threading.Thread(target=lambda: (strata.Pipeline.from_yaml(IOT).process(table), done.set()))
    worker.start()
    time.sleep(0.05)
    beside = count_for(0.5)
    still_working = not done.is_set()
    worker.join()
    assert still_working, "the counter ran only after process() returned (GIL held?), or the batch is too small"
    assert beside > alone * 0.3, (beside, alone)


def test_two_threads_use_two_cores() -> None:
    """Two threads, two pipelines: clearly faster than one thread doing both. (Large batches
    are already decoded on several cores inside one call; small ones show the threads.)"""
    if (os.cpu_count() or 1) < 2:
        import pytest

        pytest.skip("needs two cores")
    data = [iot_table(40_000, seed) for seed in (1, 2)]

    def work(table: pa.Table) -> None:
        # Batches below the size parse_json splits across cores: one pipeline, one core.
        p = strata.Pipeline.from_yaml(IOT)
        for _ in range(3):
            for batch in table.to_batches(max_chunksize=2000):
                p.process(batch)

    wall0 = time.perf_counter()
    for table in data:
        work(table)
    one_thread = time.perf_counter() - wall0

    wall0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(t,)) for t in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    two_threads = time.perf_counter() - wall0
    print(f"one thread: {one_thread:.2f} s; two threads: {two_threads:.2f} s")
    assert two_threads < one_thread * 0.8, (two_threads, one_thread)


def addresses(table: pa.Table | pa.RecordBatch) -> set[int]:
    out: set[int] = set()
    columns = table.columns
    for column in columns:
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        for chunk in chunks:
            for buf in chunk.buffers():
                if buf is not None and buf.size > 0:
                    out.add(buf.address)
    return out


def test_aligned_input_is_not_copied_on_the_way_in() -> None:
    batch = iot_table(1000, 3).combine_chunks().to_batches()[0]
    theirs = addresses(batch)
    ours = set(strata._strata._imported_buffer_addresses(batch))
    assert theirs and theirs <= ours, theirs - ours


def test_output_buffers_are_the_ones_rust_allocated() -> None:
    p = strata.Pipeline.from_yaml(IOT)
    rows, quarantine = p.process(iot_table(1000, 4))
    exported = set(p._exported_buffer_addresses())
    seen = addresses(rows) | addresses(quarantine)
    assert seen and seen <= exported, sorted(seen - exported)[:5]


def test_a_passthrough_column_keeps_the_input_buffer() -> None:
    """Input → pipeline → output without a copy anywhere: the lineage column `_file` of the
    output is the very buffer pyarrow handed in."""
    table = iot_table(1000, 5).combine_chunks()
    given = addresses(table.select(["_file"]))
    rows, _ = strata.Pipeline.from_yaml(IOT).process(table)
    assert given & addresses(rows.select(["_file"])) == given
