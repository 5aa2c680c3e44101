"""MySQL/MariaDB CDC → Kafka, end to end: `strata cdc mysql` vs python-mysql-replication.

Measures binlog row changes decoded into Debezium-shaped JSON and delivered to Kafka
(acknowledged by the broker), in change events per second, for:

* `strata cdc mysql` (release build), `snapshot_mode: never`, started from a state file seeded
  with the binlog position taken (SHOW MASTER STATUS) just before the writes;
* the Python a data engineer would otherwise write: `mysql-replication` 1.0.17 (PyPI package
  python-mysql-replication, module `pymysqlreplication`; PyMySQL 1.2.4) `BinLogStreamReader`
  from the same position, on the same table, non-blocking (it ends at the end of the binlog);
  each row of each Write/Update/DeleteRows event converted to the same envelope
  (`{before, after, source{…, file, pos, row, gtid}, op, ts_ms}`, DECIMAL as an exact string,
  DATETIME as epoch ms, key `{"id": …}`, a tombstone after each delete) and produced with
  confluent-kafka 2.16.1 with the producer settings Strata uses (`acks=all`,
  `enable.idempotence=true`, lz4, `linger.ms=5`), `flush()` at the end to wait for every
  delivery report. It does not save a position, survive a restart or check server settings.

Setup, not timed: a fresh database `strata_cdc_bench` with one table (INT primary key,
VARCHAR, DECIMAL(12,2), DATETIME, JSON) in the private MariaDB of `scripts/services.sh`, and
EVENTS row changes written with the `mariadb` client BEFORE either reader starts, so both read
the same binlog range: ~90% inserts in transactions of 1,000 rows (INSERT … SELECT from the
Sequence engine), ~8% updates and ~2% deletes, also 1,000 rows per transaction. Each reader gets
its own one-partition topic (created up front), its own replica `server_id`, and runs alone.

Timing: from the process start to the producer timestamp (CreateTime, set by librdkafka when a
record is produced; its acknowledgement follows within milliseconds) of the last record in the
reader's topic: nothing polls the broker while a reader runs, and tansu's reported high
watermark is wrong for multi-record batches (../shared/SERVERS.md), so it is not used. Strata
is run with `--stop-when-idle-ms 3000`, so its process wall time includes ~3 s of idle wait;
its own summary line and the process wall times are printed beside. Peak RSS and CPU are each
process's own (`wait4`). Afterwards both topics are read back in full: record counts, ops,
tombstones, and the rows, keys and binlog coordinates of the two topics compared record by
record.

Usage (Strata's release binary at $CARGO_TARGET_DIR/release/strata, or $STRATA_BIN):

    ./scripts/services.sh up && source "$(./scripts/services.sh env)"
    VENV=$(./scripts/python-env.sh) && $VENV/bin/pip install mysql-replication==1.0.17
    $VENV/bin/python bench/cdc_bench.py [EVENTS]          # default 500,000
"""
import base64
import calendar
import datetime
import decimal
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata/target"))
STRATA = os.environ.get("STRATA_BIN", os.path.join(TARGET, "release", "strata"))
DB, TABLE = "strata_cdc_bench", "orders"
TXN_ROWS = 1000
IDLE_MS = 3000


# ---------------------------------------------------------------- the Python baseline (child)

def _json_value(v):
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, datetime.datetime):
        return calendar.timegm(v.timetuple()) * 1000 + v.microsecond // 1000
    if isinstance(v, datetime.date):
        return (v - datetime.date(1970, 1, 1)).days
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(v).decode()
    return v


def _row(values):
    return {k: _json_value(v) for k, v in values.items()}


def python_reader(args):
    """Runs in a child process so that its wall time and peak RSS are its own."""
    from confluent_kafka import Producer
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import MariadbGtidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    a = json.loads(args)
    producer = Producer({
        "bootstrap.servers": a["brokers"], "acks": "all", "enable.idempotence": True,
        "compression.type": "lz4", "linger.ms": 5, "queue.buffering.max.messages": 500_000,
    })
    failed = []

    def on_delivery(err, _msg):
        if err is not None:
            failed.append(err)

    def send(key, value):
        while True:
            try:
                producer.produce(a["topic"], value=value, key=key, on_delivery=on_delivery)
                return
            except BufferError:
                producer.poll(0.05)

    stream = BinLogStreamReader(
        connection_settings={"host": a["host"], "port": a["port"], "user": a["user"],
                             "passwd": a["password"]},
        server_id=a["server_id"], resume_stream=True, blocking=False,
        log_file=a["file"], log_pos=a["pos"],  # (is_mariadb=True would ignore them)
        only_events=[MariadbGtidEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[a["db"]], only_tables=[a["table"]])
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    events, gtid = 0, None
    for ev in stream:
        if isinstance(ev, MariadbGtidEvent):
            gtid = ev.gtid
            continue
        op = "c" if isinstance(ev, WriteRowsEvent) else "u" if isinstance(ev, UpdateRowsEvent) else "d"
        pk = ev.primary_key
        pks = [pk] if isinstance(pk, str) else list(pk or ())
        start = ev.packet.log_pos - ev.packet.event_size
        for i, row in enumerate(ev.rows):
            if op == "u":
                before, after = _row(row["before_values"]), _row(row["after_values"])
            elif op == "c":
                before, after = None, _row(row["values"])
            else:
                before, after = _row(row["values"]), None
            image = after if after is not None else before
            key = dumps({k: image[k] for k in pks}).encode() if pks else None
            value = {
                "before": before, "after": after,
                "source": {"version": "python", "connector": "mysql", "name": "bench",
                           "ts_ms": ev.timestamp * 1000, "snapshot": "false", "db": ev.schema,
                           "table": ev.table, "server_id": ev.packet.server_id, "gtid": gtid,
                           "file": stream.log_file, "pos": start, "row": i},
                "op": op, "ts_ms": int(time.time() * 1000),
            }
            send(key, dumps(value).encode())
            if op == "d":
                send(key, None)
            events += 1
            if events % 1000 == 0:
                producer.poll(0)
        if events >= a["expected"]:
            break
    stream.close()
    left = producer.flush(60)
    if left or failed:
        sys.exit(f"python reader: {left} records undelivered, {len(failed)} failed: {failed[:3]}")
    print(f"python reader: {events} events delivered")


# ---------------------------------------------------------------- the driver

def parse_url(url):
    rest = url.split("://", 1)[1]
    creds, hp = rest.rsplit("@", 1) if "@" in rest else ("root", rest)
    user, _, password = creds.partition(":")
    host, _, port = hp.partition(":")
    return host, int(port or 3306), user, password


def mariadb(url, sql, database=None):
    host, port, user, password = parse_url(url)
    cmd = ["mariadb", "--no-defaults", "-h", host, "-P", str(port), "-u", user, "-N", "-B"]
    if password:
        cmd.append(f"-p{password}")
    if database:
        cmd += ["-D", database]
    return subprocess.run(cmd, input=sql, check=True, capture_output=True, text=True).stdout


def master_status(url):
    f, p = mariadb(url, "SHOW MASTER STATUS").split("\t")[:2]
    return f, int(p)


def write_changes(url, events):
    """EVENTS row changes; returns (inserts, updates, deletes)."""
    deletes = max(1, events // 50)
    updates = max(1, events * 2 // 25)
    inserts = events - updates - deletes
    sql = []
    for a in range(1, inserts + 1, TXN_ROWS):
        b = min(inserts, a + TXN_ROWS - 1)
        sql.append(
            f"INSERT INTO {TABLE} SELECT seq, CONCAT('customer ', seq), (seq % 100000) * 1.37, "
            f"TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, "
            f"JSON_OBJECT('seq', seq, 'tier', seq % 5, 'tags', JSON_ARRAY('a', 'b')) "
            f"FROM seq_{a}_to_{b};")
    for a in range(1, updates + 1, TXN_ROWS):
        b = min(updates, a + TXN_ROWS - 1)
        sql.append(f"UPDATE {TABLE} SET amount = amount + 1, customer = CONCAT(customer, ' *') "
                   f"WHERE id BETWEEN {a} AND {b};")
    for a in range(inserts - deletes + 1, inserts + 1, TXN_ROWS):
        b = min(inserts, a + TXN_ROWS - 1)
        sql.append(f"DELETE FROM {TABLE} WHERE id BETWEEN {a} AND {b};")
    mariadb(url, "\n".join(sql), DB)
    return inserts, updates, deletes


def create_topics(brokers, topics):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": brokers})
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        f.result(30)


def run_timed(cmd):
    """(start as epoch s, wall s, CPU s, peak RSS MB, output) of one process."""
    out = tempfile.TemporaryFile()
    started_at = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out.seek(0)
    text = out.read().decode()
    if status != 0:
        sys.exit(f"{cmd[0]} failed (status {status}):\n{text}")
    return started_at, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text.strip()


def read_topic(brokers, topic, expected_records):
    """Every record of the topic, [(key bytes, value dict or None)], and the greatest record
    timestamp (epoch s). Reads until nothing new arrives for 2 s: tansu's reported high
    watermark is wrong for multi-record batches (../shared/SERVERS.md), so it is not used."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"cdc-bench-read-{topic}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    records, last_ts = [], 0
    idle_since = time.time()
    while time.time() - idle_since < (2 if len(records) >= expected_records else 30):
        batch = c.consume(10_000, 0.5)
        if batch:
            idle_since = time.time()
        for m in batch:
            if m.error():
                sys.exit(f"{topic}: {m.error()}")
            last_ts = max(last_ts, m.timestamp()[1])
            records.append((m.key(), json.loads(m.value()) if m.value() is not None else None))
    c.close()
    return records, last_ts / 1000


def summarise(records):
    ops = {"c": 0, "u": 0, "d": 0}
    tombstones = 0
    for _, v in records:
        if v is None:
            tombstones += 1
        else:
            ops[v["op"]] += 1
    return ops, tombstones


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--python-reader":
        return python_reader(sys.argv[2])
    url, brokers = os.environ.get("STRATA_TEST_MYSQL_URL"), os.environ.get("STRATA_TEST_KAFKA")
    if not url or not brokers:
        sys.exit("STRATA_TEST_MYSQL_URL / STRATA_TEST_KAFKA are not set: run scripts/services.sh up "
                 "and source its env file")
    if not os.path.exists(STRATA):
        sys.exit(f"{STRATA} is missing: cargo build --release --bin strata")
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000

    mariadb(url, f"DROP DATABASE IF EXISTS {DB}; CREATE DATABASE {DB};")
    mariadb(url, f"""CREATE TABLE {TABLE} (id INT PRIMARY KEY, customer VARCHAR(64) NOT NULL,
        amount DECIMAL(12,2), created_at DATETIME NOT NULL, doc JSON)""", DB)
    file, pos = master_status(url)
    t = time.perf_counter()
    inserts, updates, deletes = write_changes(url, events)
    end_file, end_pos = master_status(url)
    print(f"wrote {events:,} row changes ({inserts:,} inserts, {updates:,} updates, {deletes:,} "
          f"deletes; {TXN_ROWS:,} rows per transaction) in {time.perf_counter() - t:.1f}s: "
          f"binlog {file}:{pos} → {end_file}:{end_pos}")
    expected_records = events + deletes  # + a tombstone after each delete

    run = f"{os.getpid()}-{int(time.time())}"
    s_prefix, p_prefix = f"bench-strata-{run}", f"bench-python-{run}"
    s_topic, p_topic = f"{s_prefix}.{DB}.{TABLE}", f"{p_prefix}.{DB}.{TABLE}"
    create_topics(brokers, [s_topic, p_topic])
    server_id = 60000 + os.getpid() % 1000 * 2

    work = tempfile.mkdtemp(prefix="strata-cdc-bench-")
    state = os.path.join(work, "state.json")
    with open(state, "w") as f:
        json.dump({"position": {"file": file, "pos": pos, "gtid": None}, "snapshot_done": True}, f)
    config = os.path.join(work, "cdc.yaml")
    with open(config, "w") as f:
        f.write(f"""url: "{url}"
name: bench
server_id: {server_id}
tables: [{DB}.{TABLE}]
snapshot_mode: never
state_file: {state}
topic_prefix: {s_prefix}
kafka_brokers: "{brokers}"
""")
    results = {}
    build = "release" if os.sep + "release" + os.sep in STRATA else STRATA
    name_s = f"strata cdc mysql ({build})"
    results[name_s] = run_timed(
        [STRATA, "cdc", "mysql", "--config", config, "--stop-when-idle-ms", str(IDLE_MS)])
    print(f"{name_s}: {results[name_s][4].splitlines()[-1]}")

    host, port, user, password = parse_url(url)
    args = json.dumps({"host": host, "port": port, "user": user, "password": password,
                       "server_id": server_id + 1, "file": file, "pos": pos, "db": DB,
                       "table": TABLE, "topic": p_topic, "brokers": brokers, "expected": events})
    name_p = "python-mysql-replication 1.0.17 + confluent-kafka"
    results[name_p] = run_timed([sys.executable, os.path.abspath(__file__), "--python-reader", args])
    print(f"{name_p}: {results[name_p][4].splitlines()[-1]}")

    # Both topics read back: counts, and the same rows and keys, record by record.
    s_recs, s_last = read_topic(brokers, s_topic, expected_records)
    p_recs, p_last = read_topic(brokers, p_topic, expected_records)
    # Seconds from the process start to its last record's producer timestamp (CreateTime,
    # set by librdkafka when the record is produced; its acknowledgement follows within ms).
    reached = {name_s: s_last - results[name_s][0], name_p: p_last - results[name_p][0]}
    all_ok = True
    for name, recs in ((name_s, s_recs), (name_p, p_recs)):
        ops, tomb = summarise(recs)
        ok = (len(recs) == expected_records and ops == {"c": inserts, "u": updates, "d": deletes}
              and tomb == deletes)
        all_ok &= ok
        print(f"{name}: {len(recs):,} records: {ops}, {tomb:,} tombstones "
              f"{'— as expected' if ok else '— NOT AS EXPECTED'}")
    differ = 0
    for (sk, sv), (pk, pv) in zip(s_recs, p_recs):
        same_value = (sv is None and pv is None) or (
            sv is not None and pv is not None and sv["op"] == pv["op"]
            and sv["before"] == pv["before"] and sv["after"] == pv["after"]
            and {k: sv["source"][k] for k in ("file", "pos", "row", "gtid")}
            == {k: pv["source"][k] for k in ("file", "pos", "row", "gtid")})
        if sk != pk or not same_value:
            if differ < 3:
                print(f"differs:\n  strata {sk!r} {sv}\n  python {pk!r} {pv}")
            differ += 1
    print(f"records that differ between the two topics (op, before, after, key, file/pos/row/gtid): "
          f"{differ:,}")

    base = reached[name_p]
    print(f"\n| run | events | s to last record | events/s | process wall s | CPU s | peak RSS MB "
          f"| vs Python |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, (_, wall, cpu, rss, _) in results.items():
        r = reached[name]
        print(f"| {name} | {events:,} | {r:.2f} | {events / r:,.0f} | {wall:.2f} | "
              f"{cpu:.2f} | {rss:.0f} | {base / r:.2f}× |")
    print(f"(strata's process wall includes --stop-when-idle-ms {IDLE_MS}; CPU is the whole "
          f"process; the topics hold {expected_records:,} records each, tombstones included)")
    mariadb(url, f"DROP DATABASE IF EXISTS {DB}")
    shutil.rmtree(work, ignore_errors=True)
    if not all_ok:
        sys.exit("a reader did not deliver the expected events")


if __name__ == "__main__":
    main()
