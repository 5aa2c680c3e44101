"""Webhook receiver benchmark: N signed Pipefy webhooks at concurrency C (default 20,000 at 50)
against `strata serve webhooks`, and in the same run against a FastAPI + confluent-kafka
receiver with the same contract (bench/webhook_baseline_fastapi.py, uvicorn with 2 workers —
one per core, as it would be deployed). Both answer 2xx only after Kafka's acks=all delivery.
The load comes from the same Rust client for both (examples/webhook_load.rs); afterwards each
topic is counted to check that it holds exactly the acknowledged requests.

Usage (broker and release build needed; FastAPI and uvicorn from PyPI in the venv):
    source $(scripts/services.sh env)      # STRATA_TEST_KAFKA
    cargo build --release -p strata-cli -p strata-examples --example webhook_load
    $(scripts/python-env.sh)/bin/pip install fastapi==0.165.0 uvicorn==0.54.0
    python bench/webhook_bench.py [REQUESTS] [CONCURRENCY]

A/B of two Strata builds in the same run: STRATA_BINARIES="before=/tmp/strata-old,after=/tmp/strata-new"
(each is run in turn, in that order, before the FastAPI baseline).
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata/target"))
STRATA = os.path.join(TARGET, "release", "strata")
LOAD = os.environ.get("WEBHOOK_LOAD", os.path.join(TARGET, "release", "examples", "webhook_load"))
SECRET = "bench-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create(brokers, topics):
    admin = AdminClient({"bootstrap.servers": brokers})
    for f in admin.create_topics([NewTopic(t, num_partitions=p) for t, p in topics]).values():
        f.result()


def count(brokers, topic, partitions):
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"count-{time.time_ns()}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    n, quiet = 0, time.time()
    while time.time() - quiet < 5:
        batch = c.consume(10000, 1.0)
        if batch:
            n += sum(1 for m in batch if m.error() is None)
            quiet = time.time()
    c.close()
    return n


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def peak_rss_mb(pids):
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) // 1024
        except OSError:
            pass
    return total


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def load(url, n, c):
    env = dict(os.environ, PIPEFY_WEBHOOK_SECRET=SECRET)
    out = subprocess.run([LOAD, url, str(n), str(c)], env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_strata(brokers, n, c, topic, dlq, binary=STRATA):
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "webhooks.yaml")
        with open(cfg, "w") as f:
            f.write(f"listen: 127.0.0.1:{port}\nkafka: {{brokers: '{brokers}'}}\n"
                    f"dead_letter_topic: {dlq}\nack_timeout_ms: 10000\nsources:\n  pipefy:\n"
                    f"    preset: pipefy\n    topic: {topic}\n    hmac: {{secret_env: PIPEFY_WEBHOOK_SECRET}}\n")
        env = dict(os.environ, PIPEFY_WEBHOOK_SECRET=SECRET, STRATA_LOG="warn")
        p = subprocess.Popen([binary, "serve", "webhooks", "--config", cfg], env=env,
                             stdout=subprocess.DEVNULL)
        wait_port(port)
        r = load(f"http://127.0.0.1:{port}/webhooks/pipefy", n, c)
        r["peak_rss_mb"] = peak_rss_mb([p.pid])
        p.terminate()
        p.wait()
    return r


def run_fastapi(brokers, n, c, topic):
    port = free_port()
    venv_bin = os.path.dirname(sys.executable)
    env = dict(os.environ, PIPEFY_WEBHOOK_SECRET=SECRET, KAFKA=brokers, TOPIC=topic)
    p = subprocess.Popen([os.path.join(venv_bin, "uvicorn"), "--app-dir", os.path.join(ROOT, "bench"),
                          "webhook_baseline_fastapi:app", "--port", str(port), "--workers", "2",
                          "--log-level", "warning", "--no-access-log"], env=env)
    wait_port(port)
    time.sleep(2)  # both workers up
    r = load(f"http://127.0.0.1:{port}/webhooks/pipefy", n, c)
    r["peak_rss_mb"] = peak_rss_mb([p.pid] + children(p.pid))
    p.terminate()
    p.wait()
    return r


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    c = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    brokers = os.environ["STRATA_TEST_KAFKA"]
    tag = time.time_ns()
    binaries = [tuple(b.split("=", 1)) for b in os.environ.get("STRATA_BINARIES", "").split(",") if b]
    if not binaries:
        binaries = [("strata", STRATA)]
    names = [name for name, _ in binaries] + ["fastapi"]
    topics = {name: f"bench-wh-{name}-{tag}" for name in names}
    dlq = f"bench-wh-dlq-{tag}"
    create(brokers, [(topics[name], 3) for name in names] + [(dlq, 1)])
    results = {name: run_strata(brokers, n, c, topics[name], dlq, path) for name, path in binaries}
    results["fastapi"] = run_fastapi(brokers, n, c, topics["fastapi"])
    for name, r in results.items():
        r["in_kafka"] = count(brokers, topics[name], 3)
    print(f"{n} signed Pipefy webhooks at concurrency {c}, acks=all before 2xx")
    print(f"{'receiver':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'RSS MB':>8}{'2xx':>8}{'in Kafka':>10}")
    labels = [(name, f"strata serve webhooks ({name})") for name, _ in binaries]
    for name, label in labels + [("fastapi", "FastAPI+confluent-kafka, 2 workers")]:
        r = results[name]
        ok = r["statuses"].get("200", 0)
        print(f"{label:<34}{r['requests_per_s']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
              f"{r['max_ms']:>9.1f}{r['peak_rss_mb']:>8}{ok:>8}{r['in_kafka']:>10}")
    f = results["fastapi"]
    for name, _ in binaries:
        s = results[name]
        print(f"ratio {name}: {s['requests_per_s'] / f['requests_per_s']:.2f}x the requests/s, "
              f"p99 {f['p99_ms'] / s['p99_ms']:.2f}x lower")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
