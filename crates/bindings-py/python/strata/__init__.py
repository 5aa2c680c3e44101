"""Strata from Python: the same Rust pipelines over Arrow data, the lake, and every command.

- :class:`Pipeline` runs a pipeline over pyarrow, polars or DuckDB data (Arrow C data
  interface: no copies) and returns ``(rows, quarantine)`` as pyarrow Tables;
- :class:`Lake` lists and reads silver and gold tables and bronze files as Arrow streams, and
  runs ``batch``, ``models run`` and ``maintain``;
- :func:`run` runs any ``strata`` command in this process;
- :func:`decrypt` gives back the values the ``encrypt`` mask wrote, for holders of the keys;
- :mod:`strata.spark` runs a pipeline inside Spark executors, :mod:`strata.airflow` gives
  Airflow operators.
"""

from __future__ import annotations

from strata._strata import (
    Lake,
    PartitionPlan,
    Pipeline,
    __version__,
    decrypt,
    file_input_schema,
    kafka_input_schema,
    partition_plan,
    run,
)
from strata.errors import (
    AuditError,
    CheckpointError,
    CommandError,
    ConfigError,
    DataError,
    LakeError,
    SpecError,
    StateError,
    StrataError,
)

__all__ = [
    "AuditError",
    "CheckpointError",
    "CommandError",
    "ConfigError",
    "DataError",
    "decrypt",
    "Lake",
    "LakeError",
    "PartitionPlan",
    "Pipeline",
    "SpecError",
    "StateError",
    "StrataError",
    "__version__",
    "file_input_schema",
    "kafka_input_schema",
    "partition_plan",
    "run",
]
