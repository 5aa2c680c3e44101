"""Strata's Airflow 3 operators (`strata.airflow`) run by a real Airflow: `airflow dags test` of
`examples/airflow/strata_demo_dag.py` (SQLite metadata database in a temporary AIRFLOW_HOME) over
a lake holding the demo's bronze:

* the DAG `strata airflow dag` generates from `deploy/airflow/demo.yaml` succeeds: one batch task per pipeline fills silver, `models_run` publishes every gold
  model of `models/` (and returns their names as its XCom), `maintain` runs;
* with the hand-written example DAG and a blocking audit made impossible (`dim_customer` must hold a billion rows), `models_run`
  fails at once although the DAG allows a retry, the model and those reading it stay
  unpublished, independent models are published, and `maintain` does not run.

Airflow lives in a venv of its own (`$STRATA_AIRFLOW_VENV`, default ~/.cache/strata/airflow-venv,
made by scripts/python-env.sh) into which the strata wheel is installed; all Strata work here runs
through that venv's `strata` module. Without it the tests are skipped, and fail under CI.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sqlite3
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV = pathlib.Path(os.environ.get("STRATA_AIRFLOW_VENV") or pathlib.Path.home() / ".cache/strata/airflow-venv")
AIRFLOW, PYTHON = VENV / "bin" / "airflow", VENV / "bin" / "python"
DAY = "2025-11-20"  # the date of the demo's bronze partitions
GOLD = sorted(f"gold.{p.stem}" for p in (ROOT / "models").glob("*.sql"))
BATCHES = {f"batch_{p}" for p in ["iot", "pipefy", "card_phases", "x_posts", "mysql_orders_cdc", "orders", "pg_customers"]}


def require_airflow() -> None:
    """Skips (fails under CI) when the Airflow venv or the strata wheel in it is missing."""
    problem = None
    if not AIRFLOW.exists():
        problem = f"no Airflow at {AIRFLOW} (scripts/python-env.sh makes it)"
    else:
        out = subprocess.run([PYTHON, "-c", "import strata.airflow"], check=False, capture_output=True, text=True)
        if out.returncode != 0:
            problem = f"strata.airflow does not import in {VENV}: {out.stderr.strip()[-500:]}"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def strata_py(code: str, *args: str) -> str:
    """Runs Python code in the Airflow venv (where the strata wheel is); its stdout."""
    code = f"import json, sys, strata\n{code}"
    out = subprocess.run([PYTHON, "-c", code, *args], check=False, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def lake_tables(lake: pathlib.Path) -> list[str]:
    out = strata_py("print(json.dumps(strata.Lake(sys.argv[1]).tables()))", str(lake))
    return list(json.loads(out.strip().splitlines()[-1]))


def published_rows(lake: pathlib.Path, table: str) -> int:
    """Rows of a table's published (main) snapshot: 0 for a table whose first run was held back."""
    code = "print(strata.Lake(sys.argv[1]).read(sys.argv[2]).read_all().num_rows)"
    return int(strata_py(code, str(lake), table).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bronze_lake(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A lake holding the bronze of every demo source, and nothing else."""
    require_airflow()
    out = tmp_path_factory.mktemp("demo")
    strata_py("strata.run(['demo', '--out', sys.argv[1], '--events', '2000'])", str(out))
    (lake,) = out.glob("run-*")
    # `strata demo` also builds silver and gold: without its catalog (tables, checkpoints),
    # models and lineage events, the lake is bronze alone, as the sources leave it.
    shutil.rmtree(lake / "catalog")
    shutil.rmtree(lake / "models")
    shutil.rmtree(lake / "lineage")
    assert sorted(p.name for p in lake.iterdir()) == ["bronze"]
    return lake


def run_dag(tmp: pathlib.Path, bronze: pathlib.Path, project: pathlib.Path, dag: pathlib.Path) -> tuple[
    subprocess.CompletedProcess[str], pathlib.Path, dict[str, tuple[str, int, int]], dict[str, object]
]:
    """`airflow dags test strata_demo DAY` over a copy of the bronze lake: (process, lake,
    {task_id: (state, try_number, max_tries)}, {task_id: XCom return value})."""
    lake, dags, home = tmp / "lake", tmp / "dags", tmp / "airflow"
    shutil.copytree(bronze, lake)
    dags.mkdir()
    shutil.copy(dag, dags)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STRATA_", "PYTHONPATH"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(dags), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               STRATA_LAKE=str(lake), STRATA_PROJECT=str(project))  # fmt: skip
    migrate = subprocess.run([AIRFLOW, "db", "migrate"], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    # A retryable failure would wait out the DAG's 5 min retry delay: the timeout allows it.
    dags_test = [str(AIRFLOW), "dags", "test", "strata_demo", DAY]
    proc = subprocess.run(dags_test, check=False, env=env, capture_output=True, text=True, timeout=1200)
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT task_id, state, try_number, max_tries FROM task_instance WHERE dag_id = 'strata_demo'")
        states = {t: (s, n, m) for t, s, n, m in rows}
        xcoms = {t: json.loads(v) for t, v in db.execute("SELECT task_id, value FROM xcom WHERE key = 'return_value'")}
    return proc, lake, states, xcoms


def project_copy(tmp: pathlib.Path) -> pathlib.Path:
    """A project folder (`pipelines/`, `models/`) the DAG reads through STRATA_PROJECT."""
    project = tmp / "project"
    for folder in ["pipelines", "models"]:
        shutil.copytree(ROOT / folder, project / folder)
    return project


def test_generated_demo_dag_runs_bronze_to_gold(bronze_lake: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """The DAG `strata airflow dag` writes from deploy/airflow/demo.yaml."""
    dag = tmp_path / "strata_demo_generated.py"
    schedule = ROOT / "deploy" / "airflow" / "demo.yaml"
    strata_py("strata.run(['airflow', 'dag', '--schedule', sys.argv[1], '--out', sys.argv[2]])", str(schedule), str(dag))
    assert "StrataBatchOperator(" in dag.read_text()
    proc, lake, states, xcoms = run_dag(tmp_path, bronze_lake, project_copy(tmp_path), dag)
    log = proc.stdout[-6000:] + proc.stderr[-6000:]
    assert proc.returncode == 0, log
    assert set(states) == BATCHES | {"models_run", "maintain"}, states
    assert all(s == "success" and n == 1 for s, n, _ in states.values()), states
    tables = lake_tables(lake)
    assert set(GOLD) <= set(tables), tables
    assert {"silver.iot_events", "silver.customers", "silver.orders", "silver.card_phases"} <= set(tables), tables
    assert xcoms["models_run"] == GOLD
    assert published_rows(lake, "gold.dim_customer") > 0


def test_failed_blocking_audit_fails_models_run_without_retry(
    bronze_lake: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    project = project_copy(tmp_path)
    model = project / "models" / "dim_customer.sql"
    sql = model.read_text()
    assert "--   - row_count: {min: 1}\n" in sql
    model.write_text(sql.replace("--   - row_count: {min: 1}\n", "--   - row_count: {min: 1000000000}\n"))

    proc, lake, states, _ = run_dag(tmp_path, bronze_lake, project, ROOT / "examples" / "airflow" / "strata_demo_dag.py")
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-6000:]
    assert all(states[t][0] == "success" for t in BATCHES), states
    # Failed on its first try although one retry was allowed: an audit failure is not retried.
    assert states["models_run"] == ("failed", 1, 1), states
    assert states["maintain"][0] == "upstream_failed", states
    failure = [line for line in log.splitlines() if "AirflowFailException:" in line]
    assert failure and "dim_customer" in failure[-1], log[-6000:]
    tables = set(lake_tables(lake))
    # Not published (its snapshot waits on the audit branch), and what reads it never ran; the
    # independent models are published.
    assert "gold.dim_customer" not in tables or published_rows(lake, "gold.dim_customer") == 0
    assert not {"gold.fact_orders", "gold.agg_revenue_by_segment"} & tables, tables
    assert {"gold.agg_device_hourly", "gold.agg_posts_daily", "gold.fact_card_phase_durations"} <= tables, tables
