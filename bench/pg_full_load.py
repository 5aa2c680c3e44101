"""PostgreSQL full load: `psql \\copy (SELECT …) TO '/dev/null' (FORMAT binary)` vs `strata ingest postgres`.

Creates a table of ROWS rows × 6 columns (int8 key, int4, numeric(12,2), text, timestamptz,
bool) with generate_series in the test PostgreSQL ($STRATA_TEST_PG_URL, started by
`scripts/services.sh up`), then times, in the same run and on the same table:

* psql's own binary COPY of the whole table to /dev/null (one session: the floor of the server's
  work and the wire, nothing decoded);
* `strata ingest postgres --dry-run` with 1 reader: exported snapshot, binary COPY decoded into
  Arrow batches, nothing written (the same work as psql plus the decoding);
* `strata ingest postgres` with 1 and with 3 readers: the same, plus Parquet (zstd) written to a
  local bronze.

Reports wall time, CPU of the client process, peak RSS, rows/s and the ratio to psql. Each run
is repeated REPEAT times and the best wall time kept. Usage:

    source /tmp/strata-services/env
    python bench/pg_full_load.py [ROWS] [REPEAT]      # defaults 1,000,000 and 3

Needs a release build: `cargo build --release --bin strata` (binary at
$CARGO_TARGET_DIR/release/strata).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata/target"))
STRATA = os.environ.get("STRATA_BIN", os.path.join(TARGET, "release", "strata"))
TABLE = "strata_bench.pg_full_load"
SELECT = f"SELECT id, qty, amount, label, created_at, active FROM {TABLE}"


def measure(cmd, env=None):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{cmd[0]} failed:\n{out.decode()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.decode().strip()


def psql(url, sql):
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], check=True)


def main():
    url = os.environ.get("STRATA_TEST_PG_URL")
    if not url:
        sys.exit("STRATA_TEST_PG_URL is not set: run scripts/services.sh up and source its env file")
    if not os.path.exists(STRATA):
        sys.exit(f"{STRATA} is missing: cargo build --release --bin strata")
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    psql(url, "CREATE SCHEMA IF NOT EXISTS strata_bench")
    psql(url, f"DROP TABLE IF EXISTS {TABLE}")
    psql(url, f"""CREATE TABLE {TABLE} (id int8 PRIMARY KEY, qty int4 NOT NULL, amount numeric(12,2),
        label text, created_at timestamptz NOT NULL, active bool)""")
    psql(url, f"""INSERT INTO {TABLE} SELECT g, g % 1000, round((g % 100000) * 1.37, 2),
        'customer ' || g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', g % 3 = 0
        FROM generate_series(1, {rows}) g""")
    psql(url, f"VACUUM ANALYZE {TABLE}")
    size = subprocess.run(["psql", url, "-Atc", f"SELECT pg_size_pretty(pg_table_size('{TABLE}'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    print(f"table {TABLE}: {rows:,} rows × 6 columns, {size}")

    work = tempfile.mkdtemp(prefix="strata-pg-bench-")
    config = os.path.join(work, "pg.yaml")
    with open(config, "w") as f:
        f.write(f"""connection: {{ url: "{url}" }}
tables:
  - schema: strata_bench
    name: pg_full_load
""")
    runs = {
        "psql \\copy (FORMAT binary) > /dev/null": lambda i: [
            "psql", url, "-c", f"\\copy ({SELECT}) TO '/dev/null' (FORMAT binary)"],
    }
    runs["strata ingest postgres --dry-run, 1 reader (decode to Arrow only)"] = lambda i: [
        STRATA, "ingest", "postgres", "--config", config, "--parallelism", "1", "--dry-run",
        "--lake", os.path.join(work, "lake-dry")]
    for readers in (1, 3):
        runs[f"strata ingest postgres, {readers} reader(s) → Parquet bronze"] = (
            lambda i, r=readers: [STRATA, "ingest", "postgres", "--config", config, "--parallelism", str(r),
                                  "--lake", os.path.join(work, f"lake-{r}-{i}")])
    results = {}
    for name, cmd in runs.items():
        best = None
        for i in range(repeat):
            m = measure(cmd(i))
            if best is None or m[0] < best[0]:
                best = m
            for r in (1, 3):
                shutil.rmtree(os.path.join(work, f"lake-{r}-{i}"), ignore_errors=True)
        results[name] = best
        if name.startswith("strata"):
            print(best[3].splitlines()[-1])
    base = results["psql \\copy (FORMAT binary) > /dev/null"][0]
    print(f"\n| run | wall s | client CPU s | peak RSS MB | rows/s | vs psql |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (wall, cpu, rss, _) in results.items():
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {rows / wall:,.0f} | {base / wall:.2f}× |")
    shutil.rmtree(work, ignore_errors=True)
    psql(url, f"DROP TABLE IF EXISTS {TABLE}")


if __name__ == "__main__":
    main()
