"""Type stubs of the native module ``strata._strata`` (Rust, PyO3)."""

from __future__ import annotations

import os
from typing import Any, Literal, Protocol

import pyarrow as pa

__version__: str

class _ArrowArrayExportable(Protocol):
    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]: ...

class _ArrowStreamExportable(Protocol):
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

ArrowData = _ArrowArrayExportable | _ArrowStreamExportable
Stage = Literal["whole", "prefix", "suffix"]

class Pipeline:
    """A Strata pipeline, built from its spec on the first batch (or at once, given
    ``input_schema``)."""

    def __init__(
        self, spec: str, input_schema: pa.Schema | None = None, stage: Stage = "whole"
    ) -> None: ...
    @staticmethod
    def from_yaml(
        spec: str | os.PathLike[str],
        input_schema: pa.Schema | None = None,
        stage: Stage = "whole",
    ) -> Pipeline: ...
    def process(self, data: ArrowData) -> tuple[pa.Table, pa.Table]:
        """Runs Arrow data through the pipeline: ``(rows, quarantine)``."""
    def finish(self) -> tuple[pa.Table, pa.Table]:
        """Flushes stateful steps at the end of input: ``(rows, quarantine)``."""
    def checkpoint(self) -> bytes:
        """The pipeline and its state; :meth:`restore` rebuilds both."""
    @staticmethod
    def restore(checkpoint: bytes) -> Pipeline: ...
    def metrics(self) -> dict[str, Any]: ...
    def plan(self) -> str: ...
    def output_schema(self) -> pa.Schema: ...
    def quarantine_schema(self) -> pa.Schema: ...
    @property
    def name(self) -> str: ...
    @property
    def stage(self) -> Stage: ...
    def _exported_buffer_addresses(self) -> list[int]: ...

class PartitionPlan:
    """Where a pipeline is cut and repartitioned to run on many workers."""

    @property
    def prefix(self) -> str | None: ...
    @property
    def suffix(self) -> str: ...
    @property
    def keys(self) -> list[str]: ...
    @property
    def stateful_step(self) -> str | None: ...

def partition_plan(spec: str, input_schema: pa.Schema) -> PartitionPlan: ...

class Lake:
    """A lake (a folder, ``file:///…`` or ``s3://bucket/prefix``) and its catalog."""

    def __init__(self, uri: str | os.PathLike[str], catalog: str | None = None) -> None: ...
    @property
    def uri(self) -> str: ...
    def tables(self) -> list[str]: ...
    def read(
        self,
        table: str,
        *,
        filter: str | None = None,
        columns: list[str] | None = None,
        snapshot_id: int | None = None,
    ) -> pa.RecordBatchReader: ...
    def snapshots(self, table: str) -> list[tuple[int, int, dict[str, str]]]: ...
    def bronze_files(
        self, source: str, *, from_date: str | None = None, to_date: str | None = None
    ) -> list[str]: ...
    def read_bronze(
        self, source: str, *, files: list[str] | None = None, batch_rows: int = 8192
    ) -> pa.RecordBatchReader: ...
    def sql(self, query: str) -> pa.Table: ...
    def batch(
        self,
        source: str,
        pipeline: str | os.PathLike[str],
        *,
        from_date: str | None = None,
        to_date: str | None = None,
        full_refresh: bool = False,
    ) -> None: ...
    def models_run(
        self,
        models: str | os.PathLike[str],
        *,
        select: list[str] | None = None,
        force: bool = False,
        full_refresh: bool = False,
    ) -> None: ...
    def maintain(
        self,
        tables: list[str] | None = None,
        *,
        keep_snapshots: int | None = None,
        dry_run: bool = False,
    ) -> None: ...

def run(argv: list[str]) -> None: ...
def decrypt(data: ArrowData, keys: dict[str, str]) -> pa.Table: ...
def main(argv: list[str]) -> int: ...
def file_input_schema() -> pa.Schema: ...
def kafka_input_schema() -> pa.Schema: ...
def _imported_buffer_addresses(data: ArrowData) -> list[int]: ...
