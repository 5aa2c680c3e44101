"""OpenLineage events of `strata batch` and `strata models run`, validated against the
OpenLineage 2-0-2 JSON schemas (vendored in specs/openlineage) with Python's jsonschema, a
validator we did not write: every event, and every facet against its own facet schema.

Covers START + COMPLETE of a batch run and of each model, FAIL with the error of a broken
model and of a model held back by a blocking audit, and the lineage graph
bronze → silver → gold that the events describe.
"""
import json
import os
import pathlib
import shutil
import subprocess

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRATA = os.environ.get("STRATA_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/strata/target")) / "debug" / "strata"
)
SPECS = ROOT / "specs" / "openlineage"


def run(*args, cwd, code=0, env=None):
    out = subprocess.run([STRATA, *args], cwd=cwd, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    assert out.returncode == code, out.stdout + out.stderr
    return out.stdout


def validators():
    core = json.loads((SPECS / "OpenLineage.json").read_text())
    resources = [(core["$id"], Resource.from_contents(core))]
    facets = {}
    for f in sorted((SPECS / "facets").glob("*.json")):
        schema = json.loads(f.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
        for key in schema.get("properties", {}):
            facets[key] = schema
    registry = Registry().with_resources(resources)
    formats = Draft202012Validator.FORMAT_CHECKER  # uuid, uri, date-time where checkable
    event = Draft202012Validator({"$ref": core["$id"] + "#/$defs/RunEvent"}, registry=registry,
                                 format_checker=formats)
    return event, {k: Draft202012Validator(s, registry=registry) for k, s in facets.items()}


def check(event, event_validator, facet_validators):
    event_validator.validate(event)
    holders = [event["run"].get("facets", {}), event["job"].get("facets", {})]
    for d in event.get("inputs", []) + event.get("outputs", []):
        holders += [d.get("facets", {}), d.get("inputFacets", {}), d.get("outputFacets", {})]
    for facets in holders:
        for key, value in facets.items():
            assert key in facet_validators, f"facet {key} is not an OpenLineage facet"
            facet_validators[key].validate({key: value})


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    d = tmp_path_factory.mktemp("lineage")
    log = d / "lineage.ndjson"
    env = {"STRATA_LINEAGE": str(log)}
    run("generate", "iot", "--events", "3000", "--out", "in.ndjson", cwd=d)
    run("bronze", "put", "--lake", "lake", "--source", "iot", "--date", "2025-11-20", "--input", "in.ndjson", cwd=d)
    run("batch", "--lake", "lake", "--source", "iot", "--pipeline", str(ROOT / "pipelines" / "iot.yaml"),
        cwd=d, env=env)
    (d / "models").mkdir()
    shutil.copy(ROOT / "models" / "agg_device_hourly.sql", d / "models")
    (d / "models" / "broken.sql").write_text("-- kind: fact\nSELECT no_such_column FROM iot_events\n")
    (d / "models" / "held_back.sql").write_text(
        "-- kind: fact\n-- audits:\n--   - row_count: {max: 1}\nSELECT device_id FROM iot_events\n")
    out = subprocess.run([STRATA, "--log-format", "json", "models", "run", "--lake", "lake"], cwd=d,
                         capture_output=True, text=True, env={**os.environ, **env})
    assert out.returncode == 2, out.stdout + out.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    lines = len((d / "in.ndjson").read_bytes().splitlines())
    return events, lines, [json.loads(line) for line in out.stderr.splitlines() if line.strip()]


def test_every_event_and_facet_is_schema_valid(events):
    events = events[0]
    event_validator, facet_validators = validators()
    assert len(events) >= 8
    for e in events:
        check(e, event_validator, facet_validators)


def by_job(events):
    jobs = {}
    for e in events:
        jobs.setdefault(e["job"]["name"], []).append(e)
    return jobs


def test_each_job_starts_and_ends_with_its_datasets(events):
    events, lines, _ = events
    jobs = by_job(events)
    batch = jobs["batch.iot_events"]
    assert [e["eventType"] for e in batch] == ["START", "COMPLETE"]
    assert len({e["run"]["runId"] for e in batch}) == 1
    done = batch[1]
    assert done["inputs"][0]["name"].endswith("bronze/source=iot")
    silver = done["outputs"][0]
    assert silver["name"].endswith("silver/iot_events")
    rows = silver["outputFacets"]["outputStatistics"]["rowCount"]
    assert rows > 2800
    assert {f["name"] for f in silver["facets"]["schema"]["fields"]} >= {"device_id", "ts", "temperature"}
    quality = done["inputs"][0]["inputFacets"]
    assert quality["dataQualityMetrics"]["rowCount"] == lines
    assert any(a["assertion"] == "quarantine" for a in quality["dataQualityAssertions"]["assertions"])

    model = jobs["model.agg_device_hourly"]
    assert [e["eventType"] for e in model] == ["START", "COMPLETE"]
    assert model[1]["inputs"][0]["name"] == silver["name"]  # the graph joins up
    gold = model[1]["outputs"][0]
    assert gold["name"].endswith("gold/agg_device_hourly")
    assert "date_trunc" in model[1]["job"]["facets"]["sql"]["query"]
    lineage = gold["facets"]["columnLineage"]["fields"]
    assert lineage["avg_temp_c"]["inputFields"] == [
        {"namespace": silver["namespace"], "name": silver["name"], "field": "temperature"}]
    assert all(a["success"] for a in gold["facets"]["dataQualityAssertions"]["assertions"])


def test_failures_emit_fail_with_the_error(events):
    jobs = by_job(events[0])
    broken = jobs["model.broken"]
    assert [e["eventType"] for e in broken] == ["START", "FAIL"]
    assert "no_such_column" in broken[1]["run"]["facets"]["errorMessage"]["message"]
    held = jobs["model.held_back"]
    assert [e["eventType"] for e in held] == ["START", "FAIL"]
    assert "row_count" in held[1]["run"]["facets"]["errorMessage"]["message"]
    assertions = held[1]["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]
    assert assertions == [{"assertion": "row_count", "name": "row_count", "success": False, "severity": "error"}]


def test_json_logs_are_one_object_per_line_with_the_error(events):
    logs = events[2]
    errors = [entry for entry in logs if entry["level"] == "ERROR"]
    assert errors and "no_such_column" in errors[-1]["fields"]["message"], logs


def test_no_secret_reaches_the_logs(tmp_path):
    """A catalog password and a lineage endpoint's credentials stay out of every log line, in
    both log formats, while the lines still say what failed and where."""
    d = tmp_path
    run("generate", "iot", "--events", "200", "--out", "in.ndjson", cwd=d)
    run("bronze", "put", "--lake", "lake", "--source", "iot", "--date", "2025-11-20", "--input", "in.ndjson", cwd=d)
    secrets = ["S3cr3tPW", "tok3nSECRET", "K3Yvalue"]
    # A lineage endpoint that is down, with credentials in its URL: the run completes, and the
    # warning about dropped events names the endpoint without them.
    env = {**os.environ, "STRATA_LINEAGE": "http://user:tok3nSECRET@127.0.0.1:9/api/v1/lineage?api_key=K3Yvalue"}
    for fmt in ["text", "json"]:
        out = subprocess.run([STRATA, "--log-format", fmt, "batch", "--lake", "lake", "--source", "iot",
                              "--pipeline", str(ROOT / "pipelines" / "iot.yaml"), "--full-refresh"],
                             cwd=d, capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        assert "lineage events dropped" in out.stderr and "***@127.0.0.1:9" in out.stderr, out.stderr
        for s in secrets:
            assert s not in out.stderr + out.stdout, (s, out.stderr)
        # A catalog database with a password that cannot be reached.
        out = subprocess.run([STRATA, "--log-format", fmt, "batch", "--lake", "lake", "--source", "iot",
                              "--catalog", "postgres://strata:S3cr3tPW@127.0.0.1:1/nodb",
                              "--pipeline", str(ROOT / "pipelines" / "iot.yaml")],
                             cwd=d, capture_output=True, text=True)
        assert out.returncode != 0 and "127.0.0.1:1/nodb" in out.stderr, out.stderr
        for s in secrets:
            assert s not in out.stderr + out.stdout, (s, out.stderr)


PG_URL = os.environ.get("STRATA_TEST_PG_URL")


def psql(sql):
    binary = shutil.which("psql") or sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/psql"))[-1]
    out = subprocess.run([str(binary), PG_URL, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(not PG_URL and not os.environ.get("CI"), reason="needs scripts/services.sh up (PostgreSQL)")
def test_a_postgres_full_load_names_its_tables_and_bronze_sources(tmp_path):
    """`ingest postgres --lineage`: START and COMPLETE, schema-valid, the table as
    `postgres://host:port` + `db.schema.table` (no user or password), and the bronze source it
    wrote as output (a folder that exists) with the rows loaded."""
    import uuid
    schema = f"lin_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.customers (id int PRIMARY KEY, email text); "
         f"INSERT INTO {schema}.customers SELECT g, 'u' || g || '@x.org' FROM generate_series(1, 50) g")
    (tmp_path / "pg.yaml").write_text(
        f"connection: {{ url: \"{PG_URL}\", password_env: STRATA_TEST_PG_PW }}\n"
        f"tables:\n  - schema: {schema}\n    name: customers\n")
    run("ingest", "postgres", "--config", "pg.yaml", "--lake", "lake", "--lineage", "lineage.ndjson",
        cwd=tmp_path, env={"STRATA_TEST_PG_PW": "N0tUsedPW"})
    text = (tmp_path / "lineage.ndjson").read_text()
    assert "N0tUsedPW" not in text and "postgres@" not in text
    events = [json.loads(line) for line in text.splitlines()]
    event_validator, facet_validators = validators()
    for e in events:
        check(e, event_validator, facet_validators)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[0]["job"]["name"] == "ingest.postgres"
    host_port = PG_URL.split("@", 1)[1].split("/", 1)[0]
    table = events[1]["inputs"][0]
    assert (table["namespace"], table["name"]) == (f"postgres://{host_port}", f"postgres.{schema}.customers")
    bronze = events[1]["outputs"][0]["name"]
    assert bronze.endswith(f"bronze/source=postgres.postgres.{schema}.customers"), bronze
    assert pathlib.Path(bronze).is_dir(), bronze
    stats = events[1]["outputs"][0]["outputFacets"]["outputStatistics"]
    assert stats["rowCount"] == 50, stats


KAFKA = os.environ.get("STRATA_TEST_KAFKA")


@pytest.mark.skipif(not KAFKA and not os.environ.get("CI"), reason="needs scripts/services.sh up (tansu)")
def test_stream_bronze_names_the_topic_and_the_bronze_source(tmp_path):
    """`stream bronze --lineage` against the real broker: the job's START and COMPLETE, and one
    COMPLETE epoch per commit, parented by the job's run, from `kafka://host:port` + topic to
    the bronze folder it wrote; every event schema-valid."""
    import uuid
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"lineage-bronze-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": KAFKA})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(30)
    producer = Producer({"bootstrap.servers": KAFKA})
    for i in range(300):
        producer.produce(topic, json.dumps({"n": i}).encode())
    assert producer.flush(30) == 0
    run("stream", "bronze", "--brokers", KAFKA, "--input-topic", topic, "--lake", "lake", "--source", "events",
        "--stop-when-idle-ms", "3000", "--lineage", "lineage.ndjson", cwd=tmp_path)
    events = [json.loads(line) for line in (tmp_path / "lineage.ndjson").read_text().splitlines()]
    event_validator, facet_validators = validators()
    for e in events:
        check(e, event_validator, facet_validators)
    jobs = by_job(events)
    job = jobs["bronze.events"]
    assert [e["eventType"] for e in job] == ["START", "COMPLETE"], [e["eventType"] for e in job]
    epochs = [e for e in jobs["bronze.events.epoch"] if e["eventType"] == "COMPLETE"]
    assert epochs, jobs.keys()
    for e in epochs:
        assert e["run"]["facets"]["parent"]["run"]["runId"] == job[0]["run"]["runId"]
    done = epochs[-1]
    assert (done["inputs"][0]["namespace"], done["inputs"][0]["name"]) == (f"kafka://{KAFKA}", topic)
    bronze = done["outputs"][0]["name"]
    assert bronze.endswith("lake/bronze/source=events") and pathlib.Path(bronze).is_dir(), bronze
    copied = sum(e["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] for e in epochs)
    assert copied == 300
