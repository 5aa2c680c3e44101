"""Gold models: `agg_device_hourly` (shipped in models/) over EVENTS IoT events in silver, run by
`strata models run` (DataFusion over Iceberg, staged, 3 audits, published) against the same SQL
run by DuckDB over the same silver Parquet files, in the same run. Then the incremental re-run
after 1% late events, against DuckDB recomputing everything (it has no incremental model), and
the wall time of `strata models run --force` over the demo's six models.

    python bench/models_bench.py [EVENTS]        # default 2,000,000

Needs a release build (`cargo build --release --bin strata`) and the pinned venv
(`scripts/python-env.sh`: duckdb). STRATA_BIN overrides the binary.
"""
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata/target"))
STRATA = os.environ.get("STRATA_BIN", os.path.join(TARGET, "release", "strata"))
VENV = os.path.expanduser("~/.cache/strata/venv/bin/python")
T0 = 1_763_646_312_000
RUNS = 3

SQL = """SELECT device_id, location_site AS site, date_trunc('hour', ts) AS hour, count(*) AS readings,
       avg(temperature) AS avg_temp_c, max(temp_f) AS max_temp_f
FROM read_parquet('{files}')
GROUP BY 1, 2, 3"""

FACTS = r'''
import sys, duckdb
print(*duckdb.connect().execute(f"SELECT count(*), epoch_ms(max(ts)) FROM read_parquet('{sys.argv[1]}')").fetchone())
'''

DUCK = r'''
import sys, duckdb
sql, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads=2")
con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
print(con.execute(f"SELECT count(*), sum(readings) FROM read_parquet('{out}')").fetchone())
'''


def run(cmd, cwd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd} failed:\n{out[-3000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, out


def land(d, name, events, seed, start_ms):
    run([STRATA, "generate", "iot", "--events", str(events), "--seed", str(seed), "--start-ms", str(start_ms),
         "--out", name], d)
    run([STRATA, "bronze", "put", "--lake", "lake", "--source", "iot", "--date", "2025-11-20", "--input", name,
         "--lines-per-file", "200000"], d)
    return run([STRATA, "batch", "--lake", "lake", "--source", "iot", "--pipeline",
                os.path.join(ROOT, "pipelines", "iot.yaml")], d)


def silver_files(d):
    files = os.path.join(d, "lake", "catalog", "warehouse", "silver", "iot_events", "data", "**", "*.parquet")
    assert glob.glob(files, recursive=True), files
    return files


def silver_facts(d):
    """(rows, newest ts in ms) of the silver table (every file is live: it is append-only)."""
    rows, newest = run([VENV, "-c", FACTS, silver_files(d)], d)[2].split()
    return int(rows), int(newest)


def duck(d):
    files = silver_files(d)
    out = os.path.join(d, "duck.parquet")
    secs, rss, text = run([VENV, "-c", DUCK, SQL.format(files=files), out], d)
    return secs, rss, text.strip()


def models(d, *extra, model="agg_device_hourly"):
    return run([STRATA, "models", "run", "--lake", "lake", "--models", "models",
                "--select", model, *extra], d)


def row(name, secs, rss, note=""):
    print(f"| {name} | {secs:.2f} | {rss:,.0f} | {note} |")


def main():
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    d = tempfile.mkdtemp(prefix="models-bench-")
    try:
        os.mkdir(os.path.join(d, "models"))
        shutil.copy(os.path.join(ROOT, "models", "agg_device_hourly.sql"), os.path.join(d, "models"))
        # The same model without its audits: what computing and committing alone cost.
        text = open(os.path.join(ROOT, "models", "agg_device_hourly.sql")).read()
        header, body = text.split("-- audits:", 1)
        body = body[body.index("\nSELECT") + 1:]
        with open(os.path.join(d, "models", "agg_device_hourly_no_audits.sql"), "w") as f:
            f.write(header + body)
        secs, _, _ = land(d, "in.ndjson.zst", events, 42, T0)
        rows, newest = silver_facts(d)
        print(f"silver: {rows:,} rows ({secs:.1f} s of strata batch)\n")
        print("| run | wall s (median of 3) | peak RSS MB | result |")
        print("|---|---:|---:|---|")
        strata, duckdb, bare = [], [], []
        for _ in range(RUNS):
            strata.append(models(d, "--force", "--full-refresh"))
            bare.append(models(d, "--force", "--full-refresh", model="agg_device_hourly_no_audits"))
            duckdb.append(duck(d))
        s = statistics.median(r[0] for r in strata)
        k = statistics.median(r[0] for r in duckdb)
        line = next(l for l in strata[-1][2].splitlines() if l.startswith("model agg_device_hourly"))
        row("strata models run (full: plan, compute, stage, 3 audits, publish)", s,
            max(r[1] for r in strata), line.split(": ", 1)[1].split(", published")[0])
        row("strata models run, the same model without audits", statistics.median(r[0] for r in bare),
            max(r[1] for r in bare), "")
        row("duckdb 2.0.1 threads=2 (same SQL, same Parquet files → one Parquet)", k,
            max(r[1] for r in duckdb), f"(rows, readings) = {duckdb[-1][2]}")
        print(f"\nratio strata / duckdb: {s / k:.2f}\n")

        # 1% late events inside the lookback, then the incremental run against a full recompute.
        land(d, "late.ndjson.zst", max(events // 100, 1), 7, newest - 3_600_000)
        inc = models(d)
        full = duck(d)
        line = next(l for l in inc[2].splitlines() if l.startswith("model agg_device_hourly"))
        row("strata models run (incremental, 1% late events)", inc[0], inc[1],
            line.split(": ", 1)[1].split(", published")[0])
        row("duckdb (recomputes everything)", full[0], full[1], f"(rows, readings) = {full[2]}")
        print(f"\nratio strata incremental / duckdb full: {inc[0] / full[0]:.2f}\n")

        demo = os.path.join(d, "demo")
        run([STRATA, "demo", "--out", demo], d)
        lake = glob.glob(os.path.join(demo, "run-*"))[0]
        shutil.rmtree(os.path.join(d, "models"))
        shutil.copytree(os.path.join(ROOT, "models"), os.path.join(d, "models"))
        times = [run([STRATA, "models", "run", "--lake", lake, "--models", "models", "--force"], d)
                 for _ in range(RUNS)]
        row("strata models run --force, the 6 demo models (demo defaults)",
            statistics.median(t[0] for t in times), max(t[1] for t in times),
            times[-1][2].strip().splitlines()[-1])
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
