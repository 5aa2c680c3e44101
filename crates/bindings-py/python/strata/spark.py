"""Strata pipelines inside Spark executors: ``transform(df, spec) -> (good_df, quarantine_df)``.

The pipeline runs in the executors with ``mapInArrow`` (Arrow batches in and out, no row
conversion), so a Spark cluster scales it out. Stateful steps decide the plan
(:func:`strata.partition_plan`):

* a pipeline without state runs in one ``mapInArrow`` over the input's partitions;
* a pipeline with one stateful step (``dedup``, ``window_aggregate``) is cut before it. The
  *prefix* (parsing, casts, rules) runs where the data is. Its rows are then **hash-partitioned
  by the stateful step's keys** (``dedup.keys``, ``window_aggregate.group_by``), so all rows of a
  key reach one task and its state lives there, and sorted within each partition by input order
  (``_file``, ``_line`` for bronze; ``_kafka_partition``, ``_kafka_offset`` for Kafka), so the
  task keeps the first copy just as one process would. The *suffix* runs there.

Rules that follow: a pipeline may hold one stateful step; a key's state never spans tasks;
``dedup``'s TTL is measured against each task's own watermark (the newest event time that task
saw), which equals one process's for keys whose copies arrive within the TTL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

import strata

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_GOOD = "_strata_good"
_QUARANTINE = "_strata_quarantine"
_ORDERS = (("_file", "_line"), ("_kafka_partition", "_kafka_offset"))


def _spec_text(spec: str | os.PathLike[str]) -> str:
    text = os.fspath(spec)
    if "\n" in text or text.lstrip().startswith("{"):
        return text
    with open(text, encoding="utf-8") as f:
        return f.read()


def _spark_safe(schema: pa.Schema) -> pa.Schema:
    """The schema Spark can hold: unsigned integers widened to int64."""
    fields = [
        f.with_type(pa.int64()) if pa.types.is_unsigned_integer(f.type) else f for f in schema
    ]
    return pa.schema(fields)


def _combined_schema(good: pa.Schema, quarantine: pa.Schema) -> pa.Schema:
    return pa.schema(
        [
            pa.field(_GOOD, pa.struct(list(_spark_safe(good))), nullable=True),
            pa.field(_QUARANTINE, pa.struct(list(_spark_safe(quarantine))), nullable=True),
        ]
    )


def _combine(good: pa.Table, quarantine: pa.Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    good_type = schema.field(_GOOD).type
    quarantine_type = schema.field(_QUARANTINE).type
    for part, own, other_type, own_first in (
        (good, good_type, quarantine_type, True),
        (quarantine, quarantine_type, good_type, False),
    ):
        if part.num_rows == 0:
            continue
        for batch in part.cast(pa.schema(list(own))).to_batches():
            rows = pa.StructArray.from_arrays(batch.columns, fields=list(own))
            empty = pa.nulls(batch.num_rows, other_type)
            columns = [rows, empty] if own_first else [empty, rows]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)


def _stage_fn(
    spec_json: str, stage: str, input_schema: pa.Schema, out_schema: pa.Schema
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pipeline = strata.Pipeline(spec_json, input_schema=input_schema, stage=stage)  # type: ignore[arg-type]
        for batch in batches:
            if batch.num_rows == 0:
                continue
            good, quarantine = pipeline.process(batch.cast(input_schema))
            yield from _combine(good, quarantine, out_schema)
        good, quarantine = pipeline.finish()
        yield from _combine(good, quarantine, out_schema)

    return run


def _run_stage(
    df: DataFrame, spec_json: str, stage: str, input_schema: pa.Schema | None = None
) -> tuple[DataFrame, pa.Schema]:
    """Runs one stage over ``df``; returns the combined output and the good rows' Arrow schema.

    ``input_schema`` is what the stage's batches are cast to on the way in (Spark renames list
    items and widens unsigned integers; the pipeline checks exact types)."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    wanted = input_schema or _spark_safe(to_arrow_schema(df.schema))
    probe = strata.Pipeline(spec_json, input_schema=wanted, stage=stage)  # type: ignore[arg-type]
    good_schema = _spark_safe(probe.output_schema())
    out_schema = _combined_schema(probe.output_schema(), probe.quarantine_schema())
    combined = df.mapInArrow(
        _stage_fn(spec_json, stage, wanted, out_schema), from_arrow_schema(out_schema)
    )
    return combined, good_schema


def _split(combined: DataFrame, persist: bool) -> tuple[DataFrame, DataFrame]:
    if persist and not combined.isStreaming:
        # Good rows and quarantine are both read from this one output: without it, writing
        # each would run the pipeline (and its shuffle) once more.
        from pyspark import StorageLevel

        combined = combined.persist(StorageLevel.MEMORY_AND_DISK)
    good = combined.where(f"{_GOOD} IS NOT NULL").select(f"{_GOOD}.*")
    quarantine = combined.where(f"{_QUARANTINE} IS NOT NULL").select(f"{_QUARANTINE}.*")
    return good, quarantine


def transform(
    df: DataFrame,
    pipeline: str | os.PathLike[str],
    *,
    num_partitions: int | None = None,
    order_by: list[str] | None = None,
    persist: bool = True,
) -> tuple[DataFrame, DataFrame]:
    """Runs the pipeline (YAML/JSON text or a file) over ``df`` in the executors.

    Returns ``(good_df, quarantine_df)``: the declared output columns plus lineage, and the
    rejected rows with ``_raw``, ``_step``, ``_reason`` and lineage. ``num_partitions`` sets the
    repartition before a stateful step (default: Spark's ``spark.sql.shuffle.partitions``);
    ``order_by`` the input order within a partition (default: ``_file, _line`` or Kafka
    partition and offset, whichever the input has).

    Both DataFrames are read from one output of the pipeline, persisted (memory, then disk)
    unless ``persist=False``, so writing both runs the pipeline once; ``unpersist`` them when done.
    """
    from pyspark.sql.functions import col
    from pyspark.sql.pandas.types import to_arrow_schema

    spec = _spec_text(pipeline)
    plan = strata.partition_plan(spec, _spark_safe(to_arrow_schema(df.schema)))
    if not plan.keys:
        return _split(_run_stage(df, plan.suffix, "whole")[0], persist)
    if df.isStreaming:
        raise strata.ConfigError(
            f"step `{plan.stateful_step}` keeps state across batches, which mapInArrow on a "
            "streaming DataFrame cannot carry; use foreach_batch() (state per micro-batch) or "
            "run the pipeline with `strata stream silver`"
        )
    middle_schema: pa.Schema | None = None
    if plan.prefix is not None:
        combined, middle_schema = _run_stage(df, plan.prefix, "prefix")
        prefix_good, prefix_quarantine = _split(combined, persist)
    else:
        prefix_good, prefix_quarantine = df, None
    columns = set(prefix_good.columns)
    order = order_by or next((list(o) for o in _ORDERS if set(o) <= columns), [])
    keyed = [col(k) for k in plan.keys]
    shuffled = (
        prefix_good.repartition(num_partitions, *keyed)
        if num_partitions
        else prefix_good.repartition(*keyed)
    )
    if order:
        shuffled = shuffled.sortWithinPartitions(*order)
    good, quarantine = _split(_run_stage(shuffled, plan.suffix, "suffix", middle_schema)[0], persist)
    if prefix_quarantine is not None:
        quarantine = prefix_quarantine.unionByName(quarantine)
    return good, quarantine


def foreach_batch(
    pipeline: str | os.PathLike[str],
    sink: Callable[[DataFrame, DataFrame, int], None],
    *,
    prepare: Callable[[DataFrame], DataFrame] | None = None,
) -> Callable[[DataFrame, int], None]:
    """A ``foreachBatch`` function for Structured Streaming: each micro-batch is ``prepare``-d
    (e.g. line numbers, which a streaming DataFrame cannot compute), goes through
    :func:`transform`, and ``sink(good_df, quarantine_df, epoch_id)`` writes it. Stateful steps
    keep state within one micro-batch."""
    spec = _spec_text(pipeline)

    def each(batch_df: DataFrame, epoch_id: int) -> None:
        good, quarantine = transform(prepare(batch_df) if prepare else batch_df, spec)
        sink(good, quarantine, epoch_id)

    return each


def bronze(spark: SparkSession, lake: str, source: str, *, partitions: int | None = None) -> DataFrame:
    """The bronze files of ``source`` as raw records with the lineage ``strata batch`` gives
    them (``_raw``, ``_source``, ``_ingested_at``, ``_file``, ``_line``), read in the executors:
    one task per group of files."""
    from pyspark.sql.pandas.types import from_arrow_schema

    files = strata.Lake(lake).bronze_files(source)
    schema = _spark_safe(strata.file_input_schema())
    listing = spark.createDataFrame([(f,) for f in files], "file string")
    listing = listing.repartition(partitions or max(1, min(len(files), 64)), "file")

    def read(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        names = [str(name) for b in batches for name in b.column(0).to_pylist()]
        if not names:
            return
        reader = strata.Lake(lake).read_bronze(source, files=sorted(names))
        for batch in reader:
            yield batch.cast(schema)

    return listing.mapInArrow(read, from_arrow_schema(schema))


__all__ = ["bronze", "foreach_batch", "transform"]
