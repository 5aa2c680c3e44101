"""Prometheus metrics, read by the real thing (Debian's prometheus, prometheus-pushgateway and
promtool, installed by scripts/services.sh):

- `strata stream silver --metrics-addr` is scraped by a private Prometheus server, whose query
  API must then give the records read, the commits, the commit-duration histogram and the
  source lag of the stream;
- `strata batch --pushgateway --metrics-file` pushes to a real Pushgateway and writes a textfile
  that `promtool check metrics` accepts, with the run's exact counts;
- `strata models run --pushgateway` pushes each model's status and rows;
- the alert rules in deploy/prometheus/strata-rules.yaml pass `promtool check rules` and
  `promtool test rules` (tests/prometheus/strata-rules.test.yaml).
"""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRATA = os.environ.get("STRATA_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/strata/target")) / "debug" / "strata"
)
KAFKA = os.environ.get("STRATA_TEST_KAFKA")
PROMETHEUS = shutil.which("prometheus")
PUSHGATEWAY = shutil.which("prometheus-pushgateway")
PROMTOOL = shutil.which("promtool")

needs_prometheus = pytest.mark.skipif(
    not (PROMETHEUS and PUSHGATEWAY and PROMTOOL) and not os.environ.get("CI"),
    reason="prometheus, prometheus-pushgateway and promtool come with scripts/services.sh up",
)


def run(*args, cwd, code=0):
    out = subprocess.run([STRATA, *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == code, out.stdout + out.stderr
    return out.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def wait_until(what, probe, timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = probe()
            if last:
                return last
        except OSError as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last})")


def samples(text, name):
    """{labels text: value} of the series `name` in Prometheus text."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, value = line.rsplit(" ", 1)
            found[head[len(name):]] = float(value)
    return found


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory):
    port = free_port()
    proc = subprocess.Popen([PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until("the pushgateway answers", lambda: get(url + "/-/ready") is not None)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def bronze(tmp_path_factory):
    d = tmp_path_factory.mktemp("metrics")
    run("generate", "iot", "--events", "3000", "--out", "in.ndjson", cwd=d)
    run("bronze", "put", "--lake", "lake", "--source", "iot", "--date", "2025-11-20", "--input", "in.ndjson", cwd=d)
    return d


@needs_prometheus
def test_batch_pushes_to_a_pushgateway_and_writes_a_textfile_promtool_accepts(bronze, pushgateway):
    d = bronze
    out = run("batch", "--lake", "lake", "--source", "iot", "--pipeline", str(ROOT / "pipelines" / "iot.yaml"),
              "--pushgateway", pushgateway, "--metrics-file", "batch.prom", cwd=d)
    lines = len((d / "in.ndjson").read_bytes().splitlines())
    text = (d / "batch.prom").read_text()
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    read = samples(text, "strata_pipeline_records_read_total")
    assert read == {'{pipeline="batch.iot_events"}': lines}, text
    quarantined = samples(text, "strata_pipeline_records_quarantined_total")['{pipeline="batch.iot_events"}']
    assert f"{int(quarantined)} quarantined" in out, out
    assert samples(text, "strata_pipeline_last_run_success") == {'{pipeline="batch.iot_events"}': 1.0}
    assert samples(text, "strata_pipeline_commits_total")['{pipeline="batch.iot_events"}'] >= 1
    # The gateway holds the same figures under its grouping key.
    pushed = get(pushgateway + "/metrics")
    got = samples(pushed, "strata_pipeline_records_read_total")
    assert got.get('{instance="",job="batch.iot_events",pipeline="batch.iot_events"}') == lines, got


@needs_prometheus
def test_models_run_pushes_each_models_status(bronze, pushgateway):
    d = bronze
    run("batch", "--lake", "lake", "--source", "iot", "--pipeline", str(ROOT / "pipelines" / "iot.yaml"), cwd=d)
    models = d / "models"
    models.mkdir(exist_ok=True)
    shutil.copy(ROOT / "models" / "agg_device_hourly.sql", models)
    (models / "held_back.sql").write_text(
        "-- kind: fact\n-- audits:\n--   - row_count: {max: 1}\nSELECT device_id FROM iot_events\n")
    run("models", "run", "--lake", "lake", "--pushgateway", pushgateway, cwd=d, code=1)
    pushed = get(pushgateway + "/metrics")
    runs = samples(pushed, "strata_model_runs_total")
    assert runs.get('{instance="",job="models",model="agg_device_hourly",status="published"}') == 1, runs
    assert runs.get('{instance="",job="models",model="held_back",status="audit_failed"}') == 1, runs
    failed = samples(pushed, "strata_model_audits_failed_total")
    assert any('model="held_back"' in k for k in failed), failed
    rows = samples(pushed, "strata_model_rows_written")
    assert rows['{instance="",job="models",model="agg_device_hourly"}'] > 0, rows


@needs_prometheus
def test_alert_rules_pass_promtool(tmp_path):
    rules = ROOT / "deploy" / "prometheus" / "strata-rules.yaml"
    check = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([PROMTOOL, "test", "rules", str(ROOT / "tests" / "prometheus" / "strata-rules.test.yaml")],
                          capture_output=True, text=True, cwd=ROOT / "tests" / "prometheus")
    assert test.returncode == 0, test.stdout + test.stderr


def prom_query(base, query):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    body = json.loads(get(url))
    assert body["status"] == "success", body
    return body["data"]["result"]


@needs_prometheus
@pytest.mark.skipif(not KAFKA and not os.environ.get("CI"), reason="needs scripts/services.sh up (tansu)")
def test_stream_silver_is_scraped_by_a_real_prometheus(tmp_path):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"metrics-iot-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": KAFKA})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(30)
    run("generate", "iot", "--events", "2000", "--out", "in.ndjson", cwd=tmp_path)
    lines = (tmp_path / "in.ndjson").read_bytes().splitlines()
    producer = Producer({"bootstrap.servers": KAFKA})
    for line in lines:
        producer.produce(topic, line)
    assert producer.flush(30) == 0

    metrics_port = free_port()
    stream = subprocess.Popen(
        [STRATA, "stream", "silver", "--brokers", KAFKA, "--input-topic", topic,
         "--pipeline", str(ROOT / "pipelines" / "iot.yaml"), "--lake", "lake",
         "--commit-interval-ms", "500", "--metrics-addr", f"127.0.0.1:{metrics_port}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: strata\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n")
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        selector = '{job="strata",pipeline="stream.iot_events"}'

        def read_all():
            result = prom_query(base, "strata_pipeline_records_read_total" + selector)
            return result and float(result[0]["value"][1]) == len(lines) and result

        wait_until("Prometheus sees every record read", read_all, timeout=90)
        # Per-step counts while the stream runs (it never ends here): the first step saw every
        # record, and the quarantine the steps report is the pipeline's.
        def first_step_saw_all():
            result = prom_query(base, "max(strata_pipeline_step_records_in_total%s)" % selector)
            return result and float(result[0]["value"][1]) == len(lines) and result

        wait_until("per-step counts of a running stream", first_step_saw_all, timeout=30)
        by_steps = prom_query(base, "sum(strata_pipeline_step_quarantined_records_total%s) or vector(0)" % selector)
        whole = prom_query(base, "strata_pipeline_records_quarantined_total" + selector)
        assert by_steps and whole and float(by_steps[0]["value"][1]) == float(whole[0]["value"][1]), (by_steps, whole)
        commits = wait_until("a commit", lambda: prom_query(base, "strata_pipeline_commits_total" + selector))
        assert float(commits[0]["value"][1]) >= 1
        timed = prom_query(base, "strata_pipeline_commit_duration_seconds_count" + selector)
        assert float(timed[0]["value"][1]) == float(commits[0]["value"][1]), (timed, commits)
        slowest = prom_query(
            base, "histogram_quantile(1, strata_pipeline_commit_duration_seconds_bucket%s)" % selector)
        assert 0 < float(slowest[0]["value"][1]) < 60, slowest
        lag = prom_query(base, "strata_source_lag_seconds" + selector)
        assert lag and float(lag[0]["value"][1]) >= 0, lag
        up = prom_query(base, 'up{job="strata"}')
        assert up and up[0]["value"][1] == "1", up
        # Every query of the Grafana dashboard parses and runs; the pipeline panels have data.
        dashboard = json.loads((ROOT / "deploy" / "grafana" / "strata-dashboard.json").read_text())
        wanted = {"Records read / s", "Source lag (newest record's age)", "Output freshness (since last commit)"}

        def panels_with_data():
            with_data = set()
            for panel in dashboard["panels"]:
                for target in panel["targets"]:
                    expr = target["expr"].replace("$pipeline", "stream.iot_events")
                    if prom_query(base, expr):
                        with_data.add(panel["title"])
            return wanted <= with_data and with_data

        # rate() needs two scrapes in its window: a few seconds after the first.
        wait_until("the dashboard's pipeline panels have data", panels_with_data, timeout=30)
    finally:
        prometheus.terminate()
        stream.terminate()
        out, _ = stream.communicate(timeout=60)
        prometheus.wait(10)
    assert stream.returncode == 0, out


@needs_prometheus
@pytest.mark.skipif(not KAFKA and not os.environ.get("CI"), reason="needs scripts/services.sh up (tansu)")
def test_serve_webhooks_is_scraped_by_a_real_prometheus(tmp_path):
    """A real Prometheus scrapes the webhook receiver: the events it stored and the requests it
    refused are the counts sent, the delivery driver's records are in the same scrape, and the
    5xx alert's expression runs on them."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"metrics-hooks-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": KAFKA})
    for f in admin.create_topics([NewTopic(topic, 1, 1), NewTopic(topic + ".dlq", 1, 1)]).values():
        f.result(30)
    (tmp_path / "hooks.yaml").write_text(
        f"listen: 127.0.0.1:0\nkafka: {{brokers: '{KAFKA}'}}\ndead_letter_topic: {topic}.dlq\n"
        f"sources:\n  app:\n    topic: {topic}\n    secret_header: {{name: X-Token, value_env: TEST_HOOK_TOKEN}}\n")
    receiver = subprocess.Popen([STRATA, "serve", "webhooks", "--config", "hooks.yaml"], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "TEST_HOOK_TOKEN": "hook-token"})
    prometheus = None
    try:
        base = receiver.stdout.readline().strip().removeprefix("listening on ")
        assert base.startswith("http://"), base
        for i in range(50):
            req = urllib.request.Request(base + "/webhooks/app", data=json.dumps({"n": i}).encode(),
                                         headers={"X-Token": "hook-token", "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status < 300
        for _ in range(3):
            req = urllib.request.Request(base + "/webhooks/app", data=b"{}",
                                         headers={"X-Token": "wrong", "Content-Type": "application/json"})
            try:
                urllib.request.urlopen(req, timeout=10)
                raise AssertionError("a wrong token was accepted")
            except urllib.error.HTTPError as e:
                assert e.code == 401, e.code
        prom_port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: strata-webhooks\n"
            f"    static_configs: [{{targets: ['{base.removeprefix('http://')}']}}]\n")
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        prom = f"http://127.0.0.1:{prom_port}"
        stored = wait_until("Prometheus sees the stored events",
                            lambda: prom_query(prom, 'strata_webhook_events_total{source="app"}'))
        assert float(stored[0]["value"][1]) == 50, stored
        # The delivery driver's series come in the same scrape.
        delivered = wait_until("the driver's records in the same scrape", lambda: prom_query(
            prom, 'strata_pipeline_records_written_total{job="strata-webhooks",pipeline="webhooks"}'))
        assert float(delivered[0]["value"][1]) == 50, delivered
        refused = prom_query(prom, 'sum(strata_webhook_requests_total{source="app",status="401"})')
        assert float(refused[0]["value"][1]) == 3, refused
        rules = (ROOT / "deploy" / "prometheus" / "strata-rules.yaml").read_text()
        assert "StrataWebhook5xxRate" in rules
        five_xx = prom_query(prom, 'sum by (source) (rate(strata_webhook_requests_total{status=~"5.."}[1m]))')
        assert all(float(r["value"][1]) == 0 for r in five_xx), five_xx
    finally:
        if prometheus:
            prometheus.terminate()
            prometheus.wait(10)
        receiver.terminate()
        receiver.wait(30)
    assert receiver.returncode == 0
