"""The demo's batch path as an Airflow 3 DAG: bronze → silver (one task per pipeline) → gold → maintain.

Each task runs one ``strata`` command in-process through :mod:`strata.airflow` (``pip install
strata-py apache-airflow``). Settings come from the environment of the DAG processor and workers:

* ``STRATA_LAKE``: the lake root (a folder, ``file://…`` or ``s3://…``); default ``<project>/out/airflow/lake``;
* ``STRATA_CATALOG``: the catalog database, when not the local lake's default (read by ``strata``
  itself, so a password in it shows in no task field);
* ``STRATA_PROJECT``: the folder holding ``pipelines/`` and ``models/``; default this repository.

Bronze is filled by the sources (``strata ingest …``, ``strata bronze put``, the streaming drivers).
Each daily run reads the bronze files not yet in silver up to its own day (``--to {{ ds }}``; add
``from_date="{{ ds }}"`` to read that day alone); files already committed are skipped, so re-runs
are harmless. A task that fails retries once (an unreachable store may come back), but a failed
blocking audit, like a bad config, fails ``models_run`` at once without retrying (the gold model
stays unpublished) and ``maintain`` does not run.

Try it: ``airflow dags test strata_demo 2025-11-20`` over a lake holding the demo's bronze.
"""

from __future__ import annotations

import datetime
import os
import pathlib

from airflow.sdk import DAG
from strata.airflow import StrataBatchOperator, StrataMaintainOperator, StrataModelsRunOperator

PROJECT = pathlib.Path(os.environ.get("STRATA_PROJECT") or pathlib.Path(__file__).resolve().parents[2])
LAKE = os.environ.get("STRATA_LAKE") or str(PROJECT / "out" / "airflow" / "lake")

# Bronze source → the pipelines reading it (each writes its own silver table), as in `strata demo`.
SOURCES: dict[str, list[str]] = {
    "iot": ["iot"],
    "pipefy": ["pipefy", "card_phases"],
    "x": ["x_posts"],
    "mysql.shop.orders": ["mysql_orders_cdc", "orders"],
    "postgres.crm.customers": ["pg_customers"],
}

with DAG(
    dag_id="strata_demo",
    description="Strata demo: bronze → silver → gold (write-audit-publish) → maintenance",
    schedule="@daily",
    start_date=datetime.datetime(2025, 11, 20, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": datetime.timedelta(minutes=5)},
    tags=["strata"],
):
    silver = [
        StrataBatchOperator(
            task_id=f"batch_{pipeline}",
            lake=LAKE,
            source=source,
            pipeline=str(PROJECT / "pipelines" / f"{pipeline}.yaml"),
            to_date="{{ ds }}",
        )
        for source, pipelines in SOURCES.items()
        for pipeline in pipelines
    ]
    gold = StrataModelsRunOperator(task_id="models_run", lake=LAKE, models=str(PROJECT / "models"))
    maintain = StrataMaintainOperator(task_id="maintain", lake=LAKE)
    silver >> gold >> maintain
