"""Streaming benchmark: Kafka JSON topic → `strata stream avro` → Avro topic on the local broker.

Measures, in one run:
  1. throughput: N generated IoT events pre-loaded in the input topic, time for the driver to
     consume, transform, encode and produce them all (acks=all), from its own report;
  2. the pipeline alone on the same events (`strata transform` file → Parquet), so the broker's
     cost shows as a ratio;
  3. end-to-end latency at a fixed offered rate (default 10,000 events/s): for every output
     record, its Kafka timestamp minus the input record's Kafka timestamp (carried through the
     pipeline as the `_kafka_timestamp` lineage column) → p50 / p99;
  4. memory: the driver's RSS sampled while it works, reported after 1M and after 5M events.

Usage (broker, registry and release build needed):
    source $(scripts/services.sh env)      # STRATA_TEST_KAFKA
    python bench/stream_bench.py [EVENTS] [RATE]     # defaults 1,000,000 and 10,000
    python bench/stream_bench.py --memory            # the 1M / 5M RSS run
    python bench/stream_bench.py --ab BASE_BIN HEAD_BIN [EVENTS]   # throughput, two binaries
                                                                   # alternating A/B/A/B
    python bench/stream_bench.py --latency [RATE]                 # the latency run alone
    STRATA_DRIVER_ARGS="--max-wait-ms 5" python bench/stream_bench.py ...   # extra driver flags
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata/target"))
STRATA = os.environ.get("STRATA_BIN", os.path.join(TARGET, "release", "strata"))
BROKERS = os.environ.get("STRATA_TEST_KAFKA", "127.0.0.1:19092")
PIPELINE = os.path.join(ROOT, "pipelines", "iot.yaml")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def topics(prefix):
    stamp = time.time_ns()
    names = [f"{prefix}-{stamp}-{k}" for k in ("json", "avro", "dlq")]
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for f in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        f.result()
    return names


def generate(work, n):
    path = os.path.join(work, f"iot-{n}.ndjson")
    if not os.path.exists(path):
        subprocess.run([STRATA, "generate", "iot", "--events", str(n), "--out", path], check=True,
                       capture_output=True)
    return path


def produce(topic, path, rate=None):
    p = Producer({"bootstrap.servers": BROKERS, "linger.ms": 5, "enable.idempotence": True,
                  "acks": "all", "queue.buffering.max.messages": 1_000_000})
    start = time.perf_counter()
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if rate:
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            while True:
                try:
                    p.produce(topic, line.rstrip(b"\n"))
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
    p.flush()
    return time.perf_counter() - start


def registry(work):
    port = free_port()
    proc = subprocess.Popen([STRATA, "registry", "serve", "--init", "--listen", f"127.0.0.1:{port}",
                             "--state", os.path.join(work, "registry.json")], stdout=subprocess.PIPE)
    proc.stdout.readline()
    return proc, f"http://127.0.0.1:{port}"


def run_driver(work, url, t_in, t_out, t_dlq, idle_ms, sample_rss=None):
    cmd = [STRATA, "stream", "avro", "--brokers", BROKERS, "--input-topic", t_in, "--output-topic",
           t_out, "--dlq-topic", t_dlq, "--pipeline", PIPELINE, "--registry", url, "--partitions", "0",
           "--group", t_in + "-g", "--state-dir", os.path.join(work, "state"), "--stop-when-idle-ms",
           str(idle_ms), "--max-wait-ms", os.environ.get("STRATA_MAX_WAIT_MS", "20")] + os.environ.get("STRATA_DRIVER_ARGS", "").split()
    start = time.perf_counter()
    # Progress lines are logs (stderr) in newer builds: read both streams.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, samples = [], []

    def read():
        for line in proc.stdout:
            lines.append((time.perf_counter() - start, line.strip()))

    reader = threading.Thread(target=read)
    reader.start()
    while sample_rss is not None:
        # wait4 with WNOHANG, not Popen.poll(): poll would reap the child and lose its rusage.
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            with open(f"/proc/{proc.pid}/status") as s:
                rss = next(int(l.split()[1]) for l in s if l.startswith("VmRSS"))
            samples.append((time.perf_counter() - start, rss / 1024))
        except (FileNotFoundError, StopIteration):
            pass
        time.sleep(0.25)
    else:
        _, status, usage = os.wait4(proc.pid, 0)
    reader.join()
    if status != 0:
        sys.exit(f"driver failed: {lines[-5:]}")
    return lines, samples, usage


def records_in(line):
    # "<b> batches: <n> records in, ..." (before the runtime), "records_in=<n>" (progress logs),
    # "stopped: [<c> commits, ]<n> rows in, ..." (the final line of either).
    for pattern in (r" batches: (\d+) records in", r"records_in=(\d+)", r"stopped: .*?(\d+) rows in"):
        m = re.search(pattern, line)
        if m:
            return int(m.group(1))
    return None


def throughput(work, n):
    path = generate(work, n)
    t_in, t_out, t_dlq = topics("thr")
    produce(t_in, path)
    reg, url = registry(work)
    try:
        lines, _, usage = run_driver(work, url, t_in, t_out, t_dlq, idle_ms=2000)
    finally:
        reg.terminate()
    # Active time: until the last report before idling (the final report line carries the total).
    total = next(records_in(l) for _, l in reversed(lines) if records_in(l) is not None)
    elapsed = [t for t, l in lines if l.startswith("stopped")][0] - 2.0
    start = time.perf_counter()
    subprocess.run([STRATA, "transform", "--input", path, "--out", os.path.join(work, f"t-{n}-{time.time_ns()}"), "--pipeline",
                    PIPELINE], check=True, capture_output=True)
    alone = time.perf_counter() - start
    return total, elapsed, alone, usage.ru_maxrss / 1024


def latency(work, n, rate):
    path = generate(work, n)
    t_in, t_out, t_dlq = topics("lat")
    reg, url = registry(work)
    try:
        driver = threading.Thread(target=run_driver, args=(work, url, t_in, t_out, t_dlq, 4000))
        driver.start()
        time.sleep(2)  # let the driver start and assign its partition
        offered = n / produce(t_in, path, rate)
        driver.join()
        deser = AvroDeserializer(SchemaRegistryClient({"url": url}))
        c = Consumer({"bootstrap.servers": BROKERS, "group.id": f"lat-{time.time_ns()}",
                      "enable.auto.commit": False})
        c.assign([TopicPartition(t_out, 0, 0)])
        delays, idle = [], time.perf_counter()
        ctx = SerializationContext(t_out, MessageField.VALUE)
        while time.perf_counter() - idle < 4:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            idle = time.perf_counter()
            row = deser(m.value(), ctx)
            produced_at = row["_kafka_timestamp"]  # datetime of the input record
            out_ms = m.timestamp()[1]
            delays.append(out_ms - produced_at.timestamp() * 1000)
        c.close()
    finally:
        reg.terminate()
    delays.sort()
    pick = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]
    return offered, len(delays), pick(0.5), pick(0.99)


def memory(work):
    n = 5_000_000
    path = generate(work, n)
    t_in, t_out, t_dlq = topics("mem")
    produce(t_in, path)
    reg, url = registry(work)
    try:
        lines, samples, _ = run_driver(work, url, t_in, t_out, t_dlq, idle_ms=3000, sample_rss=True)
    finally:
        reg.terminate()
    marks = {}
    for t, l in lines:
        got = records_in(l)
        for mark in (1_000_000, 5_000_000):
            if got is not None and got >= mark and mark not in marks:
                rss = max((r for ts, r in samples if ts <= t), default=0)
                marks[mark] = (got, rss)
    return marks


def ab(work, base, head, n):
    global STRATA
    results = {base: [], head: []}
    for _ in range(2):
        for binary in (base, head):
            STRATA = binary
            total, elapsed, _, rss = throughput(work, n)
            results[binary].append((total / elapsed, rss))
            print(f"{binary}: {total:,} events in {elapsed:.2f} s = {total / elapsed:,.0f} events/s, RSS {rss:.0f} MB", flush=True)
    best = {b: max(r for r, _ in v) for b, v in results.items()}
    print(f"\nstream avro, {n:,} events: BASE {best[base]:,.0f} events/s, HEAD {best[head]:,.0f} events/s, "
          f"HEAD/BASE {best[head] / best[base]:.2f} (best of 2 each)")


def main():
    work = tempfile.mkdtemp(prefix="strata-stream-bench-")
    if sys.argv[1:2] == ["--ab"]:
        n = int(sys.argv[4]) if len(sys.argv) > 4 else 1_000_000
        ab(work, sys.argv[2], sys.argv[3], n)
        return
    if sys.argv[1:2] == ["--latency"]:
        rate = float(sys.argv[2]) if len(sys.argv) > 2 else 10_000
        offered, count, p50, p99 = latency(work, int(rate * 30), rate)
        print(f"latency at {offered:,.0f} events/s offered ({count:,} output records): "
              f"p50 {p50:.0f} ms, p99 {p99:.0f} ms")
        return
    if "--memory" in sys.argv:
        for mark, (got, rss) in sorted(memory(work).items()):
            print(f"after {got:,} events (≥ {mark:,}): peak RSS so far {rss:.0f} MB")
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    total, elapsed, alone, rss = throughput(work, n)
    print(f"\n{n:,} IoT events, broker {BROKERS}, {os.cpu_count()} cores\n")
    print("| run | s | events/s |")
    print("|---|---:|---:|")
    print(f"| strata stream avro (JSON topic → pipeline → Avro topic, acks=all) | {elapsed:.2f} | {total / elapsed:,.0f} |")
    print(f"| pipeline alone (strata transform, file → Parquet) | {alone:.2f} | {n / alone:,.0f} |")
    print(f"\nbroker + Avro cost: {elapsed / alone:.2f}x the pipeline alone; driver peak RSS {rss:.0f} MB")
    lat_n = int(rate * 30)
    offered, count, p50, p99 = latency(work, lat_n, rate)
    print(f"\nlatency at {offered:,.0f} events/s offered ({count:,} output records): p50 {p50:.0f} ms, p99 {p99:.0f} ms")


if __name__ == "__main__":
    main()
