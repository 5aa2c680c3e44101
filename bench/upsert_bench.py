"""Upserts into a snapshot table of KEYS keys, CHANGED keys changing per round, ROUNDS rounds:
`strata batch` (copy-on-write merge through our own Iceberg overwrite commit) against DuckDB
doing the same merge on Parquet (read, anti-join, union, rewrite) and pyiceberg 0.12's
`Table.upsert` on an Iceberg table, in the same run, on the same changes.

Reports per tool: the initial load, the mean seconds per upsert round, changed rows per second,
and peak RSS (os.wait4 for the processes we start; pyiceberg and DuckDB run in child processes too).

    python bench/upsert_bench.py [KEYS] [CHANGED] [ROUNDS]     # default 1,000,000 10,000 5

Needs a release build (`cargo build --release --bin strata`) and the pinned venv
(`scripts/python-env.sh`: duckdb, pyiceberg). STRATA_BIN overrides the binary.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata/target"))
STRATA = os.environ.get("STRATA_BIN", os.path.join(TARGET, "release", "strata"))
VENV = os.path.expanduser("~/.cache/strata/venv/bin/python")
T0 = 1_763_646_312_000


def event(i, seq, balance):
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((T0 + seq) / 1000)) + "Z"
    return json.dumps({"id": i, "name": f"account {i}", "balance": balance, "seq": seq, "op": "u" if seq else "c", "ts": ts})


def run(cmd, cwd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd} failed:\n{out[-3000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, out


DUCK = r'''
import sys, duckdb, os, time
table, changes, out = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("SET threads=2")
con.execute(f"""
COPY (
  WITH c AS (SELECT * FROM read_json('{changes}', format='newline_delimited',
             columns={{'id':'BIGINT','name':'VARCHAR','balance':'DOUBLE','seq':'BIGINT','op':'VARCHAR','ts':'TIMESTAMPTZ'}})
             QUALIFY row_number() OVER (PARTITION BY id ORDER BY seq DESC) = 1),
       t AS (SELECT * FROM read_parquet('{table}'))
  SELECT t.* FROM t ANTI JOIN c USING (id)
  UNION ALL SELECT * FROM c WHERE op <> 'd'
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)""")
'''

PYICEBERG = r'''
import sys, pyarrow as pa, pyarrow.json as pj, time
from pyiceberg.catalog.sql import SqlCatalog
warehouse, changes, mode = sys.argv[1], sys.argv[2], sys.argv[3]
cat = SqlCatalog("bench", uri=f"sqlite:///{warehouse}/catalog.db", warehouse=f"file://{warehouse}")
schema = pa.schema([("id", pa.int64(), False), ("name", pa.string()), ("balance", pa.float64()),
                    ("seq", pa.int64()), ("op", pa.string()), ("ts", pa.timestamp("us", tz="UTC"))])
data = pj.read_json(changes, parse_options=pj.ParseOptions(explicit_schema=schema)).cast(schema)
if mode == "create":
    cat.create_namespace_if_not_exists("bench")
    t = cat.create_table("bench.accounts", schema=schema)
    t.append(data)
else:
    t = cat.load_table("bench.accounts")
    t.upsert(data, join_cols=["id"])
'''


def main():
    args = sys.argv[1:]
    keys = int(args[0]) if args else 1_000_000
    changed = int(args[1]) if len(args) > 1 else 10_000
    rounds = int(args[2]) if len(args) > 2 else 5
    work = tempfile.mkdtemp(prefix="strata-upsert-")
    rng = random.Random(7)
    initial = os.path.join(work, "initial.ndjson")
    with open(initial, "w") as f:
        for i in range(keys):
            f.write(event(i, 0, 100.0) + "\n")
    change_files = []
    for r in range(rounds):
        path = os.path.join(work, f"round-{r + 1:03d}.ndjson")
        with open(path, "w") as f:
            for i in rng.sample(range(keys), changed):
                f.write(event(i, r + 1, round(rng.uniform(0, 1000), 2)) + "\n")
        change_files.append(path)
    pipeline = os.path.join(ROOT, "bench", "upsert_pipeline.yaml")
    results = {}

    # strata: each file is a bronze object, each batch run one merge commit.
    lake = os.path.join(work, "lake")
    times, rss = [], 0.0
    for k, path in enumerate([initial] + change_files):
        subprocess.run([STRATA, "bronze", "put", "--lake", lake, "--source", "accounts", "--date",
                        "2025-11-20", "--input", path], check=True, capture_output=True)
        wall, mem, _ = run([STRATA, "batch", "--lake", lake, "--source", "accounts", "--pipeline",
                            pipeline], ROOT)
        times.append(wall)
        rss = max(rss, mem)
    results["strata batch (snapshot table, CoW merge)"] = (times[0], times[1:], rss)

    # DuckDB: the same merge on a Parquet table, rewritten each round.
    duck = os.path.join(work, "duck.py")
    open(duck, "w").write(DUCK)
    table = os.path.join(work, "table-0.parquet")
    start = time.perf_counter()
    subprocess.run([VENV, "-c", f"import duckdb; duckdb.sql(\"COPY (SELECT * FROM read_json('{initial}', format='newline_delimited', columns={{'id':'BIGINT','name':'VARCHAR','balance':'DOUBLE','seq':'BIGINT','op':'VARCHAR','ts':'TIMESTAMPTZ'}})) TO '{table}' (FORMAT parquet, COMPRESSION zstd)\")"], check=True)
    load = time.perf_counter() - start
    times, rss = [], 0.0
    for r, path in enumerate(change_files):
        out = os.path.join(work, f"table-{r + 1}.parquet")
        wall, mem, _ = run([VENV, duck, table, path, out], ROOT)
        times.append(wall)
        rss = max(rss, mem)
        table = out
    results["duckdb threads=2 (anti-join + union, Parquet rewrite)"] = (load, times, rss)

    # pyiceberg 0.12 upsert.
    py = os.path.join(work, "pyice.py")
    open(py, "w").write(PYICEBERG)
    wh = os.path.join(work, "pyiceberg")
    os.makedirs(wh)
    load, _, _ = run([VENV, py, wh, initial, "create"], ROOT)
    times, rss = [], 0.0
    for path in change_files:
        wall, mem, _ = run([VENV, py, wh, path, "upsert"], ROOT)
        times.append(wall)
        rss = max(rss, mem)
    results["pyiceberg 0.12 Table.upsert"] = (load, times, rss)

    print(f"\n{keys:,} keys, {changed:,} changed per round ({100 * changed / keys:.1f}%), {rounds} rounds, {os.cpu_count()} cores\n")
    print("| tool | initial load s | mean s per upsert round | changed rows/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for name, (load, times, rss) in results.items():
        mean = sum(times) / len(times)
        print(f"| {name} | {load:.2f} | {mean:.2f} | {changed / mean:,.0f} | {rss:.0f} |")
    s = sum(results["strata batch (snapshot table, CoW merge)"][1])
    for name, (_, times, _) in results.items():
        if not name.startswith("strata"):
            print(f"strata vs {name}: {sum(times) / s:.2f}x faster per round (above 1 = strata faster)")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
