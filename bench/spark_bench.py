"""Spark + Strata (`strata.spark.transform`, the pipeline inside the executors with mapInArrow)
against the same transform written in idiomatic PySpark (`from_json`, `try_cast`, rule filters,
`dropDuplicates`, `sha2`), on the same NDJSON file, `local[2]`, both writing Parquet.

    $CARGO_TARGET_DIR/release/strata generate iot --events 2000000 --out /tmp/iot2m.ndjson
    python bench/spark_bench.py /tmp/iot2m.ndjson /tmp/spark-bench

Prints wall seconds and counts (good, quarantined) for each, and whether they are equal.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import strata.spark

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = ROOT / "pipelines" / "iot.yaml"
SCHEMA = (
    "device_id string, ts string, seq bigint, temperature string, humidity double, battery int, "
    "location struct<lat: double, lon: double, site: string>, tags array<string>, owner_email string"
)


def raw(spark: SparkSession, path: str) -> DataFrame:
    lines = spark.read.text(path)
    return lines.select(
        F.col("value").cast("binary").alias("_raw"),
        F.lit("iot").alias("_source"),
        F.current_timestamp().alias("_ingested_at"),
        F.lit(path).alias("_file"),
        F.monotonically_increasing_id().alias("_line"),
    )


def with_strata(spark: SparkSession, path: str, out: str) -> tuple[int, int]:
    good, quarantine = strata.spark.transform(raw(spark, path), SPEC)
    good.write.mode("overwrite").parquet(f"{out}/good")
    quarantine.write.mode("overwrite").parquet(f"{out}/quarantine")
    return spark.read.parquet(f"{out}/good").count(), spark.read.parquet(f"{out}/quarantine").count()


def idiomatic(spark: SparkSession, path: str, out: str) -> tuple[int, int]:
    lines = spark.read.text(path).withColumn("_line", F.monotonically_increasing_id())
    parsed = lines.select("value", "_line", F.from_json("value", SCHEMA).alias("j"))
    typed = parsed.select(
        "value",
        "_line",
        F.col("j.device_id").alias("device_id"),
        F.coalesce(
            F.try_to_timestamp(F.col("j.ts")),
            F.timestamp_millis(F.expr("try_cast(j.ts AS bigint)")),
        ).alias("ts"),
        F.col("j.seq").alias("seq"),
        F.expr("try_cast(j.temperature AS double)").alias("temperature"),
        F.col("j.humidity").alias("humidity"),
        F.col("j.battery").alias("battery"),
        F.col("j.location.lat").alias("location_lat"),
        F.col("j.location.lon").alias("location_lon"),
        F.col("j.location.site").alias("location_site"),
        F.col("j.tags").alias("tags"),
        F.col("j.owner_email").alias("owner_email"),
    )
    ok = (
        F.col("device_id").isNotNull()
        & F.col("ts").isNotNull()
        & F.col("seq").isNotNull()
        & F.col("device_id").like("dev-%")
        & (F.col("temperature").isNull() | F.col("temperature").between(-50, 100))
    )
    flagged = typed.withColumn("_ok", F.coalesce(ok, F.lit(False))).cache()
    good = (
        flagged.where("_ok")
        .dropDuplicates(["device_id", "seq"])
        .withColumn("temp_f", F.col("temperature") * 9.0 / 5.0 + 32.0)
        .withColumn("event_date", F.to_date("ts"))
        .withColumn("owner_email", F.sha2("owner_email", 256))
        .drop("value", "_ok")
    )
    quarantine = flagged.where(~F.col("_ok")).select(F.col("value").alias("_raw"), "_line")
    good.write.mode("overwrite").parquet(f"{out}/good")
    quarantine.write.mode("overwrite").parquet(f"{out}/quarantine")
    flagged.unpersist()
    return spark.read.parquet(f"{out}/good").count(), spark.read.parquet(f"{out}/quarantine").count()


def main() -> None:
    path, out = sys.argv[1], sys.argv[2]
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "6g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    results = {}
    for name, job in (("strata", with_strata), ("pyspark", idiomatic)):
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        counts = job(spark, path, f"{out}/{name}")
        results[name] = {"seconds": round(time.perf_counter() - started, 2), "good": counts[0], "quarantined": counts[1]}
    results["ratio_pyspark_over_strata"] = round(results["pyspark"]["seconds"] / results["strata"]["seconds"], 2)
    results["same_counts"] = (results["strata"]["good"], results["strata"]["quarantined"]) == (
        results["pyspark"]["good"],
        results["pyspark"]["quarantined"],
    )
    print(json.dumps(results))
    spark.stop()


if __name__ == "__main__":
    main()
