"""Apache Airflow 3 operators that run Strata commands inside the task's own process.

Each operator builds the argv of one ``strata`` command and hands it to :func:`strata.run`, so a
task does exactly what the command line does (same flags, same exit rules, same log lines)::

    from strata.airflow import StrataBatchOperator, StrataModelsRunOperator

    silver = StrataBatchOperator(task_id="iot", lake=LAKE, source="iot",
                                 pipeline="/opt/strata/pipelines/iot.yaml",
                                 from_date="{{ ds }}", to_date="{{ ds }}")
    gold = StrataModelsRunOperator(task_id="gold", lake=LAKE, models="/opt/strata/models")
    silver >> gold

Failures: a bad flag or config (:class:`strata.ConfigError`) and a failed blocking audit
(:class:`strata.AuditError`, the model stays unpublished) fail the task at once, without
retries, as :class:`AirflowFailException` carrying Strata's message; any other
:class:`strata.StrataError` (I/O, an unreachable server) is raised as is, so the task's
``retries`` apply. Secrets never go through an operator: configs name environment variables
(``password_env``, ``token_env``, ``${env:NAME}``) that the worker's environment provides. A
catalog URL holding a password is best left out (``catalog=None``): ``strata`` then reads
``STRATA_CATALOG`` from the worker's environment, and the URL shows in no rendered field. Logged
command lines mask URL passwords and credential-like Kafka properties.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import strata

try:
    from airflow.sdk import BaseOperator, Context
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "strata.airflow needs Apache Airflow 3: pip install apache-airflow "
        "(or pip install 'strata-py[airflow]')"
    ) from e
try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # pragma: no cover - Airflow 3.0 kept it in airflow.exceptions
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef,unused-ignore]

__all__ = [
    "StrataBatchOperator",
    "StrataHttpPollOperator",
    "StrataMaintainOperator",
    "StrataModelsRunOperator",
    "StrataPostgresLoadOperator",
]

_SECRET_WORDS = ("password", "secret", "token", "apikey", "jaasconfig", "oauthbearerconfig", "keypem")


def _is_secret(key: str) -> bool:
    """Whether a Kafka property name looks like it holds a credential (as Strata judges it)."""
    norm = "".join(c for c in key.lower() if c not in "._-")
    return any(norm.endswith(w) for w in _SECRET_WORDS) or norm == "sslkey"


def _mask_url(arg: str) -> str:
    """``scheme://user:***@host…``: the password of a URL in a command-line argument hidden."""
    return re.sub(r"(://[^/@:\s]*:)[^/\s]*@", r"\1***@", arg)


def _many(flag: str, values: str | Sequence[str] | None) -> list[str]:
    """``--flag v`` once per value (a single string is one value)."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [a for v in items for a in (flag, v)]


def _opt(flag: str, value: object | None) -> list[str]:
    """``--flag value``, or nothing when the value is unset."""
    return [] if value is None else [flag, str(value)]


class _StrataOperator(BaseOperator):
    """Runs one ``strata`` command; subclasses say which through :meth:`argv`."""

    ui_color = "#d6e9f8"

    def argv(self) -> list[str]:
        """The command line after ``strata`` (templated fields already rendered)."""
        raise NotImplementedError

    def shown_argv(self) -> list[str]:
        """The command line as logged, URL passwords masked (subclasses mask more)."""
        return [_mask_url(a) for a in self.argv()]

    def run_strata(self) -> None:
        """Runs the command; see the module docstring for how failures map to task states."""
        self.log.info("strata %s", shlex.join(self.shown_argv()))
        try:
            strata.run(self.argv())
        except (strata.ConfigError, strata.AuditError) as e:
            # Retrying cannot fix a bad config or data that fails an audit: fail now.
            command = " ".join(itertools.takewhile(lambda a: not a.startswith("-"), self.argv()))
            raise AirflowFailException(f"strata {command}: {e}") from e

    def execute(self, context: Context) -> Any:
        """Runs the command; returns nothing (no XCom)."""
        self.run_strata()
        return None


class StrataBatchOperator(_StrataOperator):
    """``strata batch``: the bronze files of one source → pipeline → its silver table.

    ``from_date`` / ``to_date`` (YYYY-MM-DD, inclusive) bound the bronze dates read; they are
    templated, so ``"{{ ds }}"`` processes the run's day. Files already committed are skipped
    (exactly once), so a re-run of the same day is harmless.
    """

    template_fields = ("lake", "catalog", "source", "pipeline", "from_date", "to_date")

    def __init__(
        self,
        *,
        lake: str,
        source: str,
        pipeline: str,
        catalog: str | None = None,
        from_date: str | None = None,
        to_date: str | None = None,
        full_refresh: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.lake, self.catalog, self.source, self.pipeline = lake, catalog, source, pipeline
        self.from_date, self.to_date, self.full_refresh = from_date, to_date, full_refresh

    def argv(self) -> list[str]:
        return [
            "batch", "--lake", self.lake, *_opt("--catalog", self.catalog),
            "--source", self.source, "--pipeline", self.pipeline,
            *_opt("--from", self.from_date or None), *_opt("--to", self.to_date or None),
            *(["--full-refresh"] if self.full_refresh else []),
        ]  # fmt: skip


class StrataModelsRunOperator(_StrataOperator):
    """``strata models run``: the gold models of a folder, write-audit-publish.

    A model whose blocking audit fails is not published and the task fails (no retry). Returns
    (XCom) the sorted names of the lake's gold tables after the run.
    """

    template_fields = ("lake", "catalog", "models", "select")

    def __init__(
        self,
        *,
        lake: str,
        models: str,
        select: str | Sequence[str] | None = None,
        catalog: str | None = None,
        force: bool = False,
        full_refresh: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.lake, self.catalog, self.models, self.select = lake, catalog, models, select
        self.force, self.full_refresh = force, full_refresh

    def argv(self) -> list[str]:
        return [
            "models", "run", "--models", self.models, "--lake", self.lake,
            *_opt("--catalog", self.catalog), *_many("--select", self.select),
            *(["--force"] if self.force else []), *(["--full-refresh"] if self.full_refresh else []),
        ]  # fmt: skip

    def execute(self, context: Context) -> list[str]:
        self.run_strata()
        tables = strata.Lake(self.lake, self.catalog or os.environ.get("STRATA_CATALOG")).tables()
        return sorted(t for t in tables if t.startswith("gold."))


class StrataMaintainOperator(_StrataOperator):
    """``strata maintain``: compaction, snapshot expiry and file cleanup (safe while writers run).

    ``table`` is one table or several, named as ``--table`` takes them (a silver table's bare
    name: ``iot_events``); default every silver table.
    """

    template_fields = ("lake", "catalog", "table")

    def __init__(
        self,
        *,
        lake: str,
        table: str | Sequence[str] | None = None,
        catalog: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.lake, self.catalog, self.table = lake, catalog, table

    def argv(self) -> list[str]:
        return ["maintain", "--lake", self.lake, *_opt("--catalog", self.catalog), *_many("--table", self.table)]


class StrataPostgresLoadOperator(_StrataOperator):
    """``strata ingest postgres``: one consistent full (or incremental) load into bronze.

    The config YAML names the password's environment variable (``password_env``); the worker's
    environment must hold it. ``date`` (templated) is the bronze date partition.
    """

    template_fields = ("config", "lake", "date", "state_file")

    def __init__(
        self,
        *,
        config: str,
        lake: str,
        date: str | None = None,
        parallelism: int | None = None,
        state_file: str | None = None,
        dry_run: bool = False,
        lineage: str | None = None,
        metrics_file: str | None = None,
        pushgateway: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config, self.lake, self.date, self.parallelism = config, lake, date, parallelism
        self.state_file, self.read_only, self.lineage = state_file, dry_run, lineage
        self.metrics_file, self.pushgateway = metrics_file, pushgateway

    def argv(self) -> list[str]:
        return [
            "ingest", "postgres", "--config", self.config, "--lake", self.lake,
            *_opt("--date", self.date or None), *_opt("--parallelism", self.parallelism),
            *_opt("--state-file", self.state_file), *(["--dry-run"] if self.read_only else []),
            *_opt("--lineage", self.lineage), *_opt("--metrics-file", self.metrics_file),
            *_opt("--pushgateway", self.pushgateway),
        ]  # fmt: skip


class StrataHttpPollOperator(_StrataOperator):
    """``strata ingest http --once``: one polling cycle of an HTTP API into Kafka, then exit.

    The cursor lives in the state file, so each run picks up where the last one stopped.
    ``kafka_properties`` become ``-X key=value``; a credential among them must be given as
    ``${env:NAME}`` (a literal one is refused when the DAG is parsed), and is masked in the log.
    """

    template_fields = ("config", "state_file", "brokers", "kafka_config")

    def __init__(
        self,
        *,
        config: str,
        state_file: str | None = None,
        brokers: str | None = None,
        kafka_config: str | None = None,
        kafka_properties: Mapping[str, str] | None = None,
        lineage: str | None = None,
        metrics_file: str | None = None,
        pushgateway: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        props = dict(kafka_properties or {})
        for key, value in props.items():
            if _is_secret(key) and not (value.startswith("${env:") and value.endswith("}")):
                raise ValueError(f"kafka property {key!r} holds a credential: pass it as '${{env:NAME}}'")
        self.config, self.state_file, self.brokers = config, state_file, brokers
        self.kafka_config, self.kafka_properties, self.lineage = kafka_config, props, lineage
        self.metrics_file, self.pushgateway = metrics_file, pushgateway

    def _argv(self, *, masked: bool) -> list[str]:
        props = [
            a
            for k, v in sorted(self.kafka_properties.items())
            for a in ("-X", f"{k}={'***' if masked and _is_secret(k) else v}")
        ]
        return [
            "ingest", "http", "--config", self.config, "--once",
            *_opt("--state-file", self.state_file), *_opt("--brokers", self.brokers),
            *_opt("--kafka-config", self.kafka_config), *props, *_opt("--lineage", self.lineage),
            *_opt("--metrics-file", self.metrics_file), *_opt("--pushgateway", self.pushgateway),
        ]  # fmt: skip

    def argv(self) -> list[str]:
        return self._argv(masked=False)

    def shown_argv(self) -> list[str]:
        return [_mask_url(a) for a in self._argv(masked=True)]
