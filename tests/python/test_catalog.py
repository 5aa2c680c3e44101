"""`strata catalog`, end to end: a bronze load, `strata batch` and `strata models run` with
lineage to a file. Then:
- `catalog list|show|lineage` must show each dataset's layer, owner, tags, rows, freshness and
  last run, PII tags from the pipeline's mask step, the same tags carried to a gold column
  through column lineage, and the graph bronze -> silver -> gold;
- the DataHub export must be read by DataHub's own file source (acryl-datahub, a client we did
  not write) without a failure, and hold one record per aspect.
"""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRATA = os.environ.get("STRATA_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/strata/target")) / "debug" / "strata"
)
DATAHUB = os.environ.get("STRATA_DATAHUB_BIN") or str(pathlib.Path.home() / ".cache/strata/datahub-venv/bin/datahub")


def run(*args, cwd, code=0):
    out = subprocess.run([STRATA, *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == code, out.stdout + out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    d = tmp_path_factory.mktemp("catalog")
    run("generate", "iot", "--events", "2000", "--out", "in.ndjson", cwd=d)
    run("bronze", "put", "--lake", "lake", "--source", "iot", "--date", "2025-11-20", "--input", "in.ndjson", cwd=d)
    run("batch", "--lake", "lake", "--source", "iot", "--pipeline", str(ROOT / "pipelines" / "iot.yaml"),
        "--lineage", "lineage.ndjson", cwd=d)
    models = d / "models"
    models.mkdir()
    shutil.copy(ROOT / "models" / "agg_device_hourly.sql", models)
    shutil.copy(ROOT / "models" / "agg_device_hourly.yaml", models)
    (models / "device_contacts.sql").write_text(
        "-- kind: dimension\n-- owner: support\n-- tags: [contacts]\n"
        "-- columns:\n--   contact: the owner's e-mail, hashed\n"
        "SELECT device_id, max(owner_email) AS contact, count(*) AS readings FROM iot_events GROUP BY 1\n")
    run("models", "run", "--lake", "lake", "--lineage", "lineage.ndjson", cwd=d)
    return d


def catalog(d, *args):
    return json.loads(run("catalog", *args, "--lake", "lake", "--lineage", "lineage.ndjson",
                          "--pipelines", str(ROOT / "pipelines"), "--models", "models", "--json", cwd=d))


def test_list_shows_every_layer_with_owner_rows_and_freshness(lake):
    entries = {e["name"]: e for e in catalog(lake, "list")}
    assert {"bronze.iot", "silver.iot_events", "silver.iot_events_quarantine", "gold.agg_device_hourly",
            "gold.device_contacts"} <= set(entries), sorted(entries)
    silver = entries["silver.iot_events"]
    assert silver["layer"] == "silver"
    assert silver["owner"] == "iot-data"
    table = run("sql", "--lake", "lake", "SELECT count(*) AS n FROM iot_events", cwd=lake)
    rows = int([line for line in table.splitlines() if line.startswith("| ") and "n" not in line][0].strip("| "))
    assert silver["row_count"] == rows > 1900
    assert silver["last_commit"].endswith("Z")
    assert silver["last_run"]["job"] == "batch.iot_events" and silver["last_run"]["state"] == "COMPLETE"
    assert entries["gold.device_contacts"]["owner"] == "support"
    assert entries["bronze.iot"]["downstream"] == ["silver.iot_events"]


def test_show_marks_masked_columns_and_carries_pii_downstream(lake):
    silver = catalog(lake, "show", "silver.iot_events")
    columns = {c["name"]: c for c in silver["columns"]}
    assert columns["owner_email"].get("tags") == ["pii"], columns["owner_email"]
    assert "tags" not in columns["device_id"]
    assert "pii" in silver["tags"]
    assert any(q["assertion"] == "quarantine" for q in silver["quality"]), silver["quality"]
    gold = catalog(lake, "show", "device_contacts")
    columns = {c["name"]: c for c in gold["columns"]}
    assert columns["contact"].get("tags") == ["pii"], columns
    assert columns["contact"]["description"] == "the owner's e-mail, hashed"
    assert "tags" not in columns["readings"]
    assert set(gold["tags"]) == {"contacts", "pii"}
    assert gold["upstream"] == ["silver.iot_events"]
    hourly = catalog(lake, "show", "gold.agg_device_hourly")
    assert "pii" not in hourly["tags"], hourly


def test_lineage_walks_the_graph_both_ways(lake):
    up = catalog(lake, "lineage", "gold.agg_device_hourly", "--upstream")
    assert up["upstream"] == [{"name": "silver.iot_events", "depth": 1}, {"name": "bronze.iot", "depth": 2}]
    assert up["downstream"] is None
    down = catalog(lake, "lineage", "bronze.iot", "--downstream")
    names = {d["name"]: d["depth"] for d in down["downstream"]}
    assert names["silver.iot_events"] == 1
    assert names["gold.agg_device_hourly"] == 2 and names["gold.device_contacts"] == 2


def test_an_unknown_dataset_is_a_clear_error(lake):
    out = subprocess.run([STRATA, "catalog", "show", "no_such_table", "--lake", "lake"], cwd=lake,
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "no_such_table" in out.stderr and "catalog list" in out.stderr, out.stderr


@pytest.mark.skipif(not os.path.exists(DATAHUB) and not os.environ.get("CI"),
                    reason="DataHub's CLI comes with scripts/python-env.sh (STRATA_DATAHUB_BIN)")
def test_datahub_ingests_the_export_with_its_file_source(lake, tmp_path):
    out = run("catalog", "export-datahub", "--out", str(tmp_path / "mcps.json"), "--lake", "lake",
              "--lineage", "lineage.ndjson", "--pipelines", str(ROOT / "pipelines"), "--models", "models", cwd=lake)
    mcps = json.loads((tmp_path / "mcps.json").read_text())
    assert f"{len(mcps)} metadata change proposals" in out
    aspects = {(m["entityUrn"], m["aspectName"]) for m in mcps}
    gold = "urn:li:dataset:(urn:li:dataPlatform:iceberg,gold.device_contacts,PROD)"
    assert {(gold, a) for a in ["datasetProperties", "schemaMetadata", "ownership", "globalTags",
                                "upstreamLineage"]} <= aspects
    (tmp_path / "recipe.yml").write_text(
        "source:\n  type: file\n  config:\n    path: mcps.json\n"
        "sink:\n  type: file\n  config:\n    filename: ingested.json\n")
    ingest = subprocess.run([DATAHUB, "ingest", "-c", "recipe.yml", "--strict-warnings"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert ingest.returncode == 0, ingest.stdout[-4000:] + ingest.stderr[-4000:]
    ingested = json.loads((tmp_path / "ingested.json").read_text())
    assert len(ingested) == len(mcps)
    # DataHub parsed each aspect into its own model: the PII tag on the gold column survived.
    schema = next(m for m in ingested if m.get("entityUrn") == gold and m.get("aspectName") == "schemaMetadata")
    fields = {f["fieldPath"]: f for f in schema["aspect"]["json"]["fields"]}
    assert fields["contact"]["globalTags"]["tags"] == [{"tag": "urn:li:tag:pii"}]
