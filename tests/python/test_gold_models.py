"""Gold models as a user runs them (`strata models run`) over a silver table built by
`strata batch`, read back by an independent Iceberg implementation (pyiceberg):

* the incremental model `agg_device_hourly` (shipped in `models/`) picks up late silver rows
  inside its lookback, and a forced re-run of the same interval changes nothing;
* write-audit-publish: a model made to fail a blocking audit is not published — pyiceberg and
  `strata sql` still read the previous snapshot, the new one waits on the `strata-audit` branch,
  the failing audit is reported with sample rows, and the model reading it does not run.
"""
import os
import pathlib
import shutil
import subprocess

import pytest
from pyiceberg.catalog.sql import SqlCatalog

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRATA = os.environ.get("STRATA_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/strata/target")) / "debug" / "strata"
)
NOON = 1763640000000  # 2025-11-20 12:00:00 UTC


def run(*args, cwd, code=0):
    out = subprocess.run([STRATA, *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == code, out.stdout + out.stderr
    return out.stdout


def land(d, name, events, seed, start_ms):
    """Generates IoT events, lands them in bronze and runs the IoT pipeline into silver."""
    run("generate", "iot", "--events", str(events), "--seed", str(seed), "--start-ms", str(start_ms),
        "--out", name, cwd=d)
    run("bronze", "put", "--lake", "lake", "--source", "iot", "--date", "2025-11-20", "--input", name, cwd=d)
    run("batch", "--lake", "lake", "--source", "iot", "--pipeline", str(ROOT / "pipelines" / "iot.yaml"), cwd=d)


def gold_rows(catalog, snapshot_id=None):
    table = catalog.load_table("gold.agg_device_hourly")
    rows = table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()
    return sorted((r["device_id"], r["hour"], r["readings"], round(r["avg_temp_c"] or 0, 9)) for r in rows)


def silver_truth(catalog):
    """What the model must hold: readings per device and hour, computed here from silver."""
    counts = {}
    for r in catalog.load_table("silver.iot_events").scan().to_arrow().to_pylist():
        hour = r["ts"].replace(minute=0, second=0, microsecond=0)
        counts[(r["device_id"], hour)] = counts.get((r["device_id"], hour), 0) + 1
    return counts


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    d = tmp_path_factory.mktemp("gold")
    (d / "models").mkdir()
    for name in ["agg_device_hourly.sql", "agg_device_hourly.yaml"]:
        shutil.copy(ROOT / "models" / name, d / "models" / name)
    # A model that reads it, to show what a failed audit holds back.
    (d / "models" / "agg_site_hourly.sql").write_text(
        "-- kind: aggregation\n-- grain: [site, hour]\n"
        "SELECT site, hour, sum(readings) AS readings FROM gold.agg_device_hourly GROUP BY 1, 2\n")
    land(d, "first.ndjson", 6000, 42, NOON)
    cat_dir = d / "lake" / "catalog"
    catalog = SqlCatalog("strata", uri=f"sqlite:///{cat_dir}/catalog.db", warehouse=f"file://{cat_dir}/warehouse")
    return d, catalog


def test_incremental_model_picks_up_late_rows_and_reruns_idempotently(project):
    d, catalog = project
    out = run("models", "run", "--lake", "lake", cwd=d)
    assert "agg_device_hourly: " in out and "published" in out, out
    first = gold_rows(catalog)
    truth = silver_truth(catalog)
    assert {(dev, h): n for dev, h, n, _ in first} == truth

    # Late readings, 10 minutes after noon: inside the 2 h lookback of the newest hour.
    land(d, "late.ndjson", 3000, 7, NOON + 600_000)
    grown = silver_truth(catalog)
    assert sum(grown.values()) > sum(truth.values())
    assert "input silver.iot_events changed" in run("models", "plan", "--lake", "lake", cwd=d)
    out = run("models", "run", "--lake", "lake", "--select", "agg_device_hourly", cwd=d)
    assert "from 2025-11-20 1" in out and "rows replaced" in out, out
    second = gold_rows(catalog)
    assert {(dev, h): n for dev, h, n, _ in second} == grown
    assert len({(dev, h) for dev, h, _, _ in second}) == len(second)

    # The same interval again: nothing changes.
    run("models", "run", "--lake", "lake", "--select", "agg_device_hourly", "--force", cwd=d)
    assert gold_rows(catalog) == second


def test_a_failed_blocking_audit_leaves_readers_on_the_previous_snapshot(project):
    d, catalog = project
    run("models", "run", "--lake", "lake", cwd=d)
    table = catalog.load_table("gold.agg_device_hourly")
    published = table.current_snapshot().snapshot_id
    before = gold_rows(catalog)
    count_before = run("sql", "--lake", "lake", "SELECT count(*) AS n FROM gold.agg_device_hourly", cwd=d)

    model = d / "models" / "agg_device_hourly.sql"
    text = model.read_text()
    model.write_text(text.replace(
        "--   - unique: [device_id, hour]",
        "--   - unique: [device_id, hour]\n--   - accepted_values: {column: site, values: [nowhere]}"))
    out = run("models", "run", "--lake", "lake", cwd=d, code=1)
    model.write_text(text)
    assert "agg_device_hourly: NOT PUBLISHED" in out, out
    assert "accepted_values(site): FAILED" in out, out
    assert "    {device_id: " in out, out  # sample rows
    assert "agg_site_hourly: skipped, gold.agg_device_hourly failed" in out, out

    table = catalog.load_table("gold.agg_device_hourly")
    assert table.current_snapshot().snapshot_id == published
    assert gold_rows(catalog) == before
    assert run("sql", "--lake", "lake", "SELECT count(*) AS n FROM gold.agg_device_hourly", cwd=d) == count_before
    staged = table.refs()["strata-audit"].snapshot_id
    assert staged != published
    assert gold_rows(catalog, staged) == before  # same rows, recomputed: only the audit differs
