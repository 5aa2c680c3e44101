"""Silver tables written by `strata batch` read by an independent Iceberg implementation:
pyiceberg's SQL catalog opens the same SQLite file and returns the same rows and schema."""
import json
import os
import pathlib
import subprocess

import pytest
from pyiceberg.catalog.sql import SqlCatalog

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRATA = os.environ.get("STRATA_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/strata/target")) / "debug" / "strata"
)


def run(*args, cwd):
    out = subprocess.run([STRATA, *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    d = tmp_path_factory.mktemp("lake")
    pipeline = str(ROOT / "pipelines" / "iot.yaml")
    run("generate", "iot", "--events", "12000", "--out", "in.ndjson.zst", cwd=d)
    run("bronze", "put", "--lake", "lake", "--source", "iot", "--date", "2025-11-20",
        "--input", "in.ndjson.zst", "--lines-per-file", "4000", cwd=d)
    run("batch", "--lake", "lake", "--source", "iot", "--pipeline", pipeline, cwd=d)
    expected = json.loads(run("transform", "--json", "--input", "in.ndjson.zst", "--out", "t",
                              "--pipeline", pipeline, cwd=d))["metrics"]
    cat_dir = d / "lake" / "catalog"
    catalog = SqlCatalog("strata", uri=f"sqlite:///{cat_dir}/catalog.db", warehouse=f"file://{cat_dir}/warehouse")
    return catalog, expected


def test_pyiceberg_reads_the_same_rows_and_schema(lake):
    catalog, expected = lake
    table = catalog.load_table("silver.iot_events")
    data = table.scan().to_arrow()
    assert data.num_rows == expected["rows_out"]
    assert data.schema.names[:4] == ["device_id", "ts", "seq", "temperature"]
    assert "_line" in data.schema.names and "_file" in data.schema.names
    assert [f.transform.__class__.__name__ for f in table.spec().fields] == ["DayTransform"]
    # Hidden partitioning: filtering on the timestamp prunes and still returns the right rows.
    late = table.scan(row_filter="ts >= '2025-11-20T13:46:00+00:00'").to_arrow()
    assert 0 < late.num_rows < data.num_rows
    assert all(t.as_py().minute >= 46 or t.as_py().hour > 13 for t in late.column("ts"))
    # Every commit lists the bronze files it covers (small files share a commit), each once.
    covered = [json.loads(s.summary["strata.covered"]) for s in table.snapshots()]
    assert sorted(f for c in covered for f in c) == sorted(
        f"bronze/source=iot/date=2025-11-20/in-{a:012d}-{b:012d}.ndjson.zst"
        for a, b in [(1, 4000), (4001, 8000), (8001, 12000)]
    )


def test_pyiceberg_reads_the_quarantine_table(lake):
    catalog, expected = lake
    q = catalog.load_table("silver.iot_events_quarantine").scan().to_arrow()
    assert q.num_rows == expected["quarantined"]
    assert set(q.column("_step").to_pylist()) <= {"parse_json", "cast", "expect", "output"}


def out_rows(stdout):
    """Rows out of a `strata batch` run, from its summary line."""
    line = next(l for l in stdout.splitlines() if l.startswith("done in"))
    return int(line.split(" in, ")[1].split(" out")[0])


def test_a_column_widened_by_strata_reads_promoted_in_pyiceberg(tmp_path):
    d = tmp_path
    v1 = (ROOT / "pipelines" / "iot.yaml").read_text()
    assert v1.count("battery: int32") == 2
    (d / "v1.yaml").write_text(v1)
    (d / "v2.yaml").write_text(v1.replace("battery: int32", "battery: int64"))
    run("generate", "iot", "--events", "3000", "--out", "a.ndjson", cwd=d)
    run("generate", "iot", "--events", "3000", "--seed", "7", "--start-ms", "1763732712000",
        "--out", "b.ndjson", cwd=d)
    run("bronze", "put", "--lake", "lake", "--source", "iot", "--date", "2025-11-20",
        "--input", "a.ndjson", cwd=d)
    first = out_rows(run("batch", "--lake", "lake", "--source", "iot", "--pipeline", "v1.yaml", cwd=d))
    run("bronze", "put", "--lake", "lake", "--source", "iot", "--date", "2025-11-21",
        "--input", "b.ndjson", cwd=d)
    # The evolved pipeline widens `battery`; its dedup state carries over (that step is unchanged).
    second = out_rows(run("batch", "--lake", "lake", "--source", "iot", "--pipeline", "v2.yaml", cwd=d))
    cat_dir = d / "lake" / "catalog"
    catalog = SqlCatalog("strata", uri=f"sqlite:///{cat_dir}/catalog.db", warehouse=f"file://{cat_dir}/warehouse")
    table = catalog.load_table("silver.iot_events")
    assert str(table.schema().find_field("battery").field_type) == "long"
    data = table.scan().to_arrow()
    assert data.num_rows == first + second
    assert str(data.schema.field("battery").type) == "int64"
    assert data.column("battery").null_count < data.num_rows


def test_declared_partitioning_and_its_evolution_read_in_pyiceberg(tmp_path):
    """`partition_by: [day(ts)]`, then `[day(ts), bucket(4, device_id)]` on the same table:
    pyiceberg sees the new spec, both specs' files, and every row; a bucket filter prunes."""
    d = tmp_path
    v1 = (ROOT / "pipelines" / "iot.yaml").read_text()
    assert 'partition_by: ["day(ts)"]' in v1
    (d / "v1.yaml").write_text(v1)
    (d / "v2.yaml").write_text(v1.replace('partition_by: ["day(ts)"]', 'partition_by: ["day(ts)", "bucket(4, device_id)"]'))
    run("generate", "iot", "--events", "3000", "--out", "a.ndjson", cwd=d)
    run("generate", "iot", "--events", "3000", "--seed", "7", "--start-ms", "1763732712000",
        "--out", "b.ndjson", cwd=d)
    for name, spec in [("a.ndjson", "v1.yaml"), ("b.ndjson", "v2.yaml")]:
        run("bronze", "put", "--lake", "lake", "--source", "iot", "--date", "2025-11-20", "--input", name, cwd=d)
        out = run("batch", "--lake", "lake", "--source", "iot", "--pipeline", spec, cwd=d)
    cat_dir = d / "lake" / "catalog"
    catalog = SqlCatalog("strata", uri=f"sqlite:///{cat_dir}/catalog.db", warehouse=f"file://{cat_dir}/warehouse")
    table = catalog.load_table("silver.iot_events")
    assert [f.transform.__class__.__name__ for f in table.spec().fields] == ["DayTransform", "BucketTransform"]
    assert len(table.specs()) == 2
    data = table.scan().to_arrow()
    rows = int(table.current_snapshot().summary["total-records"])
    assert data.num_rows == rows > 4000
    device = data.column("device_id")[0].as_py()
    one = table.scan(row_filter=f"device_id == '{device}'").to_arrow()
    assert 0 < one.num_rows < data.num_rows
    assert set(one.column("device_id").to_pylist()) == {device}
