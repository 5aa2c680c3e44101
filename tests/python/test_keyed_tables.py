"""Keyed silver tables (`snapshot`, `historical`) written by `strata batch` from Debezium change
events, read by an independent Iceberg implementation: pyiceberg sees the rows a model of the
table kind predicts, after upserts, deletes, a late event and a replay, and every data file it
lists exists."""
import json
import os
import pathlib
import random
import subprocess

import pytest
from pyiceberg.catalog.sql import SqlCatalog

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRATA = os.environ.get("STRATA_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/strata/target")) / "debug" / "strata"
)
STATUS = ["pending", "paid", "shipped", "delivered"]


def run(*args, cwd):
    out = subprocess.run([STRATA, *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def event(op, oid, status, amount, pos, ts_ms):
    row = {"id": oid, "customer": f"Cliente {oid}", "status": status, "amount": f"{amount:.2f}",
           "updated_at": ts_ms}
    before = None if op in ("c", "r") else dict(row, status="?")
    after = None if op == "d" else row
    if op == "d":
        before = row
    return {"before": before, "after": after, "op": op, "ts_ms": ts_ms,
            "source": {"file": "mysql-bin.000003", "pos": pos, "row": 0, "gtid": f"0-1-{pos}"}}


def change_log(seed=5, orders=60):
    """Inserts, status updates and some deletes, in binlog order."""
    rng = random.Random(seed)
    log, pos, ts = [], 4, 1_763_646_312_000
    state = {}
    for oid in range(orders):
        pos += 200
        ts += 1000
        state[oid] = 0
        log.append(event("c", oid, STATUS[0], 10 + oid, pos, ts))
    for _ in range(orders * 3):
        oid = rng.choice(sorted(state))
        pos += 200
        ts += rng.choice([0, 1000])  # binlog times tie at second resolution
        if rng.random() < 0.08:
            log.append(event("d", oid, STATUS[state.pop(oid)], 10 + oid, pos, ts))
            if len(state) < 5:
                break
            continue
        state[oid] = min(state[oid] + 1, len(STATUS) - 1)
        log.append(event("u", oid, STATUS[state[oid]], 10 + oid, pos, ts))
    return log


def expected_tables(log):
    by_key = {}
    for e in log:
        image = e["after"] or e["before"]
        by_key.setdefault(image["id"], {})[e["source"]["pos"]] = (e["op"], image["status"], e["ts_ms"])
    snapshot, history = {}, []
    for oid, versions in by_key.items():
        seqs = sorted(versions)
        op, status, _ = versions[seqs[-1]]
        if op != "d":
            snapshot[oid] = status
        for i, s in enumerate(seqs):
            op, status, ts = versions[s]
            last = i + 1 == len(seqs)
            valid_to = versions[seqs[i + 1]][2] if not last else (ts if op == "d" else None)
            history.append((oid, s, op, status, ts, valid_to, last and op != "d"))
    return snapshot, sorted(history)


def write_lines(path, events):
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    d = tmp_path_factory.mktemp("keyed")
    log = change_log()
    cut = len(log) * 2 // 3
    first, second = log[:cut], log[cut:]
    # The second delivery also carries a replay of the first's last event, and one event of the
    # first delivery arrives only now (late: older than what the table holds for its key).
    late = first.pop(cut // 2)
    second = [late, first[-1]] + second
    write_lines(d / "a.ndjson", first)
    write_lines(d / "b.ndjson", second)
    commands = [("put", "a.ndjson"), ("batch", None), ("put", "b.ndjson"), ("batch", None)]
    for what, name in commands:
        if what == "put":
            run("bronze", "put", "--lake", "lake", "--source", "mysql.shop.orders", "--date", "2025-11-20",
                "--input", name, cwd=d)
            continue
        # One pass writes `orders` and its `output.also` table `orders_history`.
        run("batch", "--lake", "lake", "--source", "mysql.shop.orders",
            "--pipeline", str(ROOT / "pipelines" / "orders.yaml"), cwd=d)
    cat_dir = d / "lake" / "catalog"
    catalog = SqlCatalog("strata", uri=f"sqlite:///{cat_dir}/catalog.db", warehouse=f"file://{cat_dir}/warehouse")
    return catalog, expected_tables(log), d


def test_pyiceberg_reads_the_snapshot_table(lake):
    catalog, (snapshot, _), _ = lake
    table = catalog.load_table("silver.orders")
    data = table.scan().to_arrow()
    got = dict(zip(data.column("order_id").to_pylist(), data.column("status").to_pylist()))
    assert data.num_rows == len(got), "one row per key"
    assert got == snapshot
    assert table.current_snapshot().summary.operation.value == "overwrite"
    assert table.spec().is_unpartitioned()


def test_pyiceberg_reads_the_historical_table(lake):
    catalog, (_, history), _ = lake
    data = catalog.load_table("silver.orders_history").scan().to_arrow()
    ms = lambda t: None if t is None else int(t.timestamp() * 1000)
    got = sorted(
        (r["order_id"], r["binlog_pos"], r["op"], r["status"], ms(r["valid_from"]), ms(r["valid_to"]), r["is_current"])
        for r in data.to_pylist()
    )
    assert got == history


def test_every_file_pyiceberg_lists_exists(lake):
    catalog, _, _ = lake
    for name in ["silver.orders", "silver.orders_history"]:
        table = catalog.load_table(name)
        files = table.inspect.files().column("file_path").to_pylist()
        assert files
        for f in files:
            assert os.path.exists(f.removeprefix("file://")), f
        # The replaced files are gone from the current snapshot, not from history.
        assert len(table.snapshots()) == 2


def test_a_widened_column_merges_and_reads_promoted_in_pyiceberg(lake):
    """`amount decimal(12,2)` → `decimal(14,2)` on the keyed tables: the promotion is committed,
    the next merge rewrites old files under the new type, and pyiceberg reads both."""
    catalog, _, d = lake
    text = (ROOT / "pipelines" / "orders.yaml").read_text()
    assert text.count("decimal(12,2)") == 3
    (d / "orders-wide.yaml").write_text(text.replace("decimal(12,2)", "decimal(14,2)"))
    big = event("u", 3, "paid", 0, 10**9, 1_763_700_000_000)
    big["after"]["amount"] = "123456789012.34"  # 14 digits: needs the wider type
    write_lines(d / "c.ndjson", [big])
    run("bronze", "put", "--lake", "lake", "--source", "mysql.shop.orders", "--date", "2025-11-21",
        "--input", "c.ndjson", cwd=d)
    run("batch", "--lake", "lake", "--source", "mysql.shop.orders", "--pipeline", "orders-wide.yaml", cwd=d)
    for name in ["orders", "orders_history"]:
        table = catalog.load_table(f"silver.{name}")
        assert str(table.schema().find_field("amount").field_type) == "decimal(14, 2)"
        data = table.scan().to_arrow()
        amounts = dict(zip(zip(data.column("order_id").to_pylist(), data.column("binlog_pos").to_pylist()),
                           data.column("amount").to_pylist()))
        assert str(amounts[(3, 10**9)]) == "123456789012.34"
        assert all(a is not None for a in amounts.values())


def test_pyiceberg_reads_the_same_rows_after_maintain(lake):
    """Runs last: compaction, expiry to one snapshot and file cleanup, then the same rows."""
    catalog, (snapshot, history), d = lake
    before = {n: catalog.load_table(f"silver.{n}").scan().to_arrow().sort_by("binlog_pos")
              for n in ["orders", "orders_history"]}
    out = run("maintain", "--lake", "lake", "--keep-snapshots", "1", "--grace-seconds", "0", cwd=d)
    assert "silver.orders" not in out and "orders:" in out, out
    orders = catalog.load_table("silver.orders")
    assert len(orders.snapshots()) == 1
    for n, rows in before.items():
        after = catalog.load_table(f"silver.{n}").scan().to_arrow().sort_by("binlog_pos")
        assert after.equals(rows), n
    for name in ["silver.orders", "silver.orders_history", "silver.orders_quarantine"]:
        table = catalog.load_table(name)
        if table.current_snapshot().summary.get("total-data-files") == "0":
            continue  # pyiceberg 0.12's inspect.files() fails on a table without files
        for f in table.inspect.files().column("file_path").to_pylist():
            assert os.path.exists(f.removeprefix("file://")), f
        data_dir = pathlib.Path(table.location().removeprefix("file://")) / "data"
        on_disk = {str(p) for p in data_dir.rglob("*") if p.is_file()}
        listed = {f.removeprefix("file://") for f in table.inspect.files().column("file_path").to_pylist()}
        assert on_disk == listed, "unreferenced data files are deleted"
