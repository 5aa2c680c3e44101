"""`strata.Lake` against a real local lake written by the real commands: bronze → batch →
silver → models run → gold, read back as Arrow streams (filters, columns, snapshots)."""

from __future__ import annotations

import pathlib
import shutil

import pyarrow.compute as pc
import pytest

import strata

ROOT = pathlib.Path(__file__).resolve().parents[3]
IOT = ROOT / "pipelines" / "iot.yaml"
SAMPLE = ROOT / "samples" / "iot_events.ndjson"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> strata.Lake:
    root = tmp_path_factory.mktemp("lake")
    strata.run(
        ["bronze", "put", "--lake", str(root), "--source", "iot", "--date", "2026-11-20",
         "--input", str(SAMPLE), "--lines-per-file", "700"]
    )
    lake = strata.Lake(root)
    lake.batch("iot", IOT)
    return lake


def test_tables_and_reads_with_filter_columns_and_snapshots(lake: strata.Lake) -> None:
    assert {"silver.iot_events", "silver.iot_events_quarantine"} <= set(lake.tables())
    whole = lake.read("silver.iot_events").read_all()
    truth = lake.sql("SELECT count(*) AS n FROM iot_events").column("n")[0].as_py()
    assert whole.num_rows == truth > 0
    site = whole.column("location_site")[0].as_py()
    picked = lake.read(
        "iot_events", filter=f"location_site = '{site}' AND temperature > 0", columns=["device_id", "temperature"]
    ).read_all()
    assert picked.column_names == ["device_id", "temperature"]
    expected = whole.filter(
        pc.and_(pc.equal(whole.column("location_site"), site), pc.greater(whole.column("temperature"), 0))
    )
    assert picked.num_rows == expected.num_rows > 0
    first = lake.snapshots("silver.iot_events")
    assert first
    # A second day lands: the old snapshot still reads the old rows.
    strata.run(
        ["bronze", "put", "--lake", lake.uri, "--source", "iot", "--date", "2026-11-21",
         "--input", str(SAMPLE), "--lines-per-file", "5000"]
    )
    lake.batch("iot", IOT)
    snapshots = lake.snapshots("silver.iot_events")
    assert len(snapshots) > len(first)
    old = lake.read("silver.iot_events", snapshot_id=first[-1][0]).read_all()
    assert old.num_rows == whole.num_rows
    quarantine = lake.read("silver.iot_events_quarantine").read_all()
    assert quarantine.num_rows > 0 and "_reason" in quarantine.column_names


def test_bronze_is_read_with_the_lineage_the_batch_driver_records(lake: strata.Lake) -> None:
    files = lake.bronze_files("iot", to_date="2026-11-20")
    assert len(files) == 3 and all(f.startswith("bronze/source=iot/date=2026-11-20/") for f in files)
    raw = lake.read_bronze("iot", files=files[:1]).read_all()
    assert raw.schema.names == strata.file_input_schema().names
    assert raw.num_rows == 700 and raw.column("_line").to_pylist() == list(range(1, 701))
    assert set(raw.column("_file").to_pylist()) == {files[0]}
    quarantine = lake.read("silver.iot_events_quarantine", columns=["_file", "_line", "_raw"]).read_all()
    row = quarantine.slice(0, 1).to_pylist()[0]
    lines = lake.read_bronze("iot", files=[row["_file"]]).read_all()
    assert lines.column("_raw")[row["_line"] - 1].as_py() == row["_raw"]
    with pytest.raises(strata.LakeError, match="no bronze file"):
        lake.read_bronze("iot", files=["bronze/nope"])


def test_models_run_and_a_failing_audit_is_an_audit_error(lake: strata.Lake, tmp_path: pathlib.Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(ROOT / "models" / "agg_device_hourly.sql", models)
    lake.models_run(models)
    assert "gold.agg_device_hourly" in lake.tables()
    published = lake.read("gold.agg_device_hourly").read_all()
    assert published.num_rows > 0
    broken = (models / "agg_device_hourly.sql").read_text().replace("WHERE readings <= 0", "WHERE readings > 0")
    (models / "agg_device_hourly.sql").write_text(broken)
    with pytest.raises(strata.AuditError, match="audit failed"):
        lake.models_run(models, force=True)
    # Readers keep the last published snapshot.
    assert lake.read("gold.agg_device_hourly").read_all().num_rows == published.num_rows
    lake.maintain(["iot_events"], dry_run=True)


def test_lake_errors_are_typed(lake: strata.Lake) -> None:
    with pytest.raises(strata.LakeError, match="nope"):
        lake.read("silver.nope")
    with pytest.raises(strata.LakeError, match="filter"):
        lake.read("iot_events", filter="no_such_column = 1")
    with pytest.raises(strata.ConfigError):
        lake.batch("iot", IOT, from_date="yesterday")
