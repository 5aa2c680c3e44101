"""Structured Streaming with a Strata pipeline: NDJSON files landing in a folder are read as a
stream, each micro-batch runs through the IoT pipeline inside the executors
(`strata.spark.foreach_batch`), and good rows and quarantine are appended to Parquet.

    python examples/spark/stream_iot.py <landing folder> <output folder>

Files already in the landing folder are processed once (`availableNow`); run it from cron or
drop the trigger to keep it running.
"""

from __future__ import annotations

import pathlib
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

import strata.spark

PIPELINE = pathlib.Path(__file__).resolve().parents[2] / "pipelines" / "iot.yaml"


def raw_records(spark: SparkSession, landing: str) -> DataFrame:
    """Lines of the landing files, with their file: a streaming DataFrame."""
    lines = spark.readStream.format("text").load(landing)
    return lines.select(F.col("value"), F.input_file_name().alias("_file"))


def with_lineage(batch: DataFrame) -> DataFrame:
    """One micro-batch (a static DataFrame) with the columns a Strata pipeline reads: raw bytes,
    source, ingest time, file and 1-based line."""
    order = Window.partitionBy("_file").orderBy(F.monotonically_increasing_id())
    return batch.select(
        F.col("value").cast("binary").alias("_raw"),
        F.lit("iot").alias("_source"),
        F.current_timestamp().alias("_ingested_at"),
        F.col("_file"),
        F.row_number().over(order).cast("long").alias("_line"),
    )


def run(spark: SparkSession, landing: str, out: str) -> None:
    """Processes what has landed, then stops."""

    def sink(good: DataFrame, quarantine: DataFrame, epoch_id: int) -> None:
        good.write.mode("append").parquet(f"{out}/good")
        quarantine.write.mode("append").parquet(f"{out}/quarantine")

    query = (
        raw_records(spark, landing)
        .writeStream.foreachBatch(strata.spark.foreach_batch(PIPELINE, sink, prepare=with_lineage))
        .option("checkpointLocation", f"{out}/_checkpoint")
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()


if __name__ == "__main__":
    session = SparkSession.builder.master("local[2]").appName("strata-stream").getOrCreate()
    run(session, sys.argv[1], sys.argv[2])
    session.stop()
