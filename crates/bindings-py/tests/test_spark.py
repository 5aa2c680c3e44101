"""`strata.spark.transform` in real PySpark (local[2], Java 17): on the same bronze files its good
and quarantine rows equal the Rust batch driver's silver tables row for row, duplicates spread
over files and partitions included."""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Iterator

import pytest

import strata

import needs

ROOT = pathlib.Path(__file__).resolve().parents[3]
IOT = ROOT / "pipelines" / "iot.yaml"

needs.module("pyspark")

from pyspark.sql import SparkSession  # noqa: E402

import strata.spark  # noqa: E402

DECLARED = [
    "device_id", "ts", "seq", "temperature", "humidity", "battery", "location_lat",
    "location_lon", "location_site", "tags", "owner_email", "temp_f", "event_date",
]


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    # Executors run this interpreter (the one with pyarrow and strata), not the system python3.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("strata-test")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> strata.Lake:
    root = tmp_path_factory.mktemp("spark-lake")
    events = root / "iot.ndjson"
    strata.run(
        ["generate", "iot", "--events", "12000", "--out", str(events), "--seed", "7",
         "--malformed", "0.02", "--invalid", "0.02", "--duplicates", "0.08"]
    )
    strata.run(
        ["bronze", "put", "--lake", str(root), "--source", "iot", "--date", "2026-11-20",
         "--input", str(events), "--lines-per-file", "1500"]
    )
    lake = strata.Lake(root)
    lake.batch("iot", IOT)
    return lake


def rows(table: object, columns: list[str]) -> list[tuple[object, ...]]:
    import pyarrow as pa

    assert isinstance(table, pa.Table)
    data = table.select(columns).to_pylist()
    return sorted(tuple(str(r[c]) for c in columns) for r in data)


def test_spark_equals_the_batch_driver_row_for_row(spark: SparkSession, lake: strata.Lake) -> None:
    import pyarrow as pa

    raw = strata.spark.bronze(spark, lake.uri, "iot", partitions=3)
    assert raw.rdd.getNumPartitions() == 3
    good, quarantine = strata.spark.transform(raw, IOT, num_partitions=4)
    spark_good = good.toArrow()
    spark_quarantine = quarantine.toArrow()

    silver = lake.read("silver.iot_events").read_all()
    silver_quarantine = lake.read("silver.iot_events_quarantine").read_all()
    key = DECLARED + ["_file", "_line"]
    assert spark_good.num_rows == silver.num_rows > 10_000
    assert rows(spark_good, key) == rows(silver, key)
    q_key = ["_file", "_line", "_step", "_reason", "_raw"]
    assert spark_quarantine.num_rows == silver_quarantine.num_rows > 100
    assert rows(spark_quarantine, q_key) == rows(silver_quarantine, q_key)
    # The duplicates were really spread: the same keys exist in several bronze files.
    assert silver.num_rows < 12000 - silver_quarantine.num_rows


def test_a_stateless_pipeline_runs_in_one_pass_and_a_streaming_dedup_is_refused(
    spark: SparkSession, lake: strata.Lake, tmp_path: pathlib.Path
) -> None:
    spec = IOT.read_text()
    start = spec.index("  - type: dedup")
    end = spec.index("  - type: mask")
    stateless = spec[:start] + spec[end:]
    raw = strata.spark.bronze(spark, lake.uri, "iot")
    good, quarantine = strata.spark.transform(raw, stateless)
    assert good.count() + quarantine.count() == 12000
    # A streaming DataFrame (files read as they land) with the stateful pipeline: a clear error.
    folder = tmp_path / "stream"
    folder.mkdir()
    raw.limit(10).write.parquet(str(folder / "part"))
    streaming = spark.readStream.schema(raw.schema).parquet(str(folder / "part"))
    with pytest.raises(strata.ConfigError, match="dedup"):
        strata.spark.transform(streaming, IOT)
    stateless_good, _ = strata.spark.transform(streaming, stateless)
    assert stateless_good.isStreaming


def test_the_structured_streaming_example_processes_landed_files(
    spark: SparkSession, tmp_path: pathlib.Path
) -> None:
    import importlib.util

    import pyarrow.parquet as pq

    spec = importlib.util.spec_from_file_location("stream_iot", ROOT / "examples" / "spark" / "stream_iot.py")
    assert spec and spec.loader
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    landing = tmp_path / "landing"
    landing.mkdir()
    lines = (ROOT / "samples" / "iot_events.ndjson").read_text().splitlines()
    (landing / "a.ndjson").write_text("\n".join(lines[:1000]) + "\n")
    (landing / "b.ndjson").write_text("\n".join(lines[1000:]) + "\nnot json\n")
    example.run(spark, str(landing), str(tmp_path / "out"))
    good = pq.read_table(tmp_path / "out" / "good")
    quarantine = pq.read_table(tmp_path / "out" / "quarantine")
    assert good.num_rows > 0
    assert "not json" in {r.decode() for r in quarantine.column("_raw").to_pylist()}
    assert good.num_rows + quarantine.num_rows <= len(lines) + 1
