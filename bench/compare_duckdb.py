"""Same run, same file: `strata transform` vs the DuckDB equivalent (duckdb_iot.py).

Reports wall time, CPU time and peak RSS of each process (measured with os.wait4, so each
figure is that one child's) and the ratios. Usage:

    python bench/compare_duckdb.py [EVENTS]        # default 2,000,000

Needs a release build (`cargo build --release --bin strata`) and `pip install duckdb`.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata/target"))
STRATA = os.path.join(TARGET, "release", "strata")


def measure(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{cmd[0]} failed:\n{out.decode()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.decode().strip()


def main():
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    work = tempfile.mkdtemp(prefix="strata-bench-")
    data = os.path.join(work, "iot.ndjson")
    subprocess.run([STRATA, "generate", "iot", "--events", str(events), "--malformed", "0.005",
                    "--invalid", "0.005", "--duplicates", "0.01", "--out", data], check=True, cwd=ROOT)
    size_mb = os.path.getsize(data) / 1e6
    lake = os.path.join(work, "lake")
    subprocess.run([STRATA, "bronze", "put", "--lake", lake, "--source", "iot", "--date", "2025-11-20",
                    "--input", data, "--lines-per-file", "250000"], check=True, cwd=ROOT, capture_output=True)
    # The same events as ONE bronze object: memory must not follow the size of a file.
    big = os.path.join(work, "lake-one-file")
    subprocess.run([STRATA, "bronze", "put", "--lake", big, "--source", "iot", "--date", "2025-11-20",
                    "--input", data, "--lines-per-file", str(events)], check=True, cwd=ROOT, capture_output=True)
    runs = {
        "strata (transform + writer thread)": [STRATA, "transform", "--input", data, "--out", os.path.join(work, "strata")],
        "strata batch (bronze → silver Iceberg)": [STRATA, "batch", "--lake", lake, "--source", "iot",
                                                   "--pipeline", "pipelines/iot.yaml"],
        "strata batch, one bronze file, --memory-mb 1024": [STRATA, "batch", "--lake", big, "--source", "iot",
                                                            "--pipeline", "pipelines/iot.yaml"],
        "strata batch, one bronze file, --memory-mb 256": [STRATA, "batch", "--lake", big, "--source", "iot",
                                                           "--pipeline", "pipelines/iot.yaml", "--full-refresh",
                                                           "--memory-mb", "256"],
        "duckdb threads=1": [sys.executable, "bench/duckdb_iot.py", data, os.path.join(work, "duck1"), "1"],
        "duckdb threads=2": [sys.executable, "bench/duckdb_iot.py", data, os.path.join(work, "duck2"), "2"],
    }
    results = {}
    for name, cmd in runs.items():
        results[name] = measure(cmd)
    print(f"\n{events:,} IoT events, {size_mb:.0f} MB NDJSON, {os.cpu_count()} cores\n")
    print(f"| run | wall s | CPU s | peak RSS MB | events/s (wall) |")
    print(f"|---|---:|---:|---:|---:|")
    for name, (wall, cpu, rss, _) in results.items():
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {events / wall:,.0f} |")
    s = results["strata (transform + writer thread)"]
    b = results["strata batch (bronze → silver Iceberg)"]
    for name in ("duckdb threads=1", "duckdb threads=2"):
        d = results[name]
        print(f"\nstrata transform vs {name}: wall {d[0] / s[0]:.2f}x faster, CPU {d[1] / s[1]:.2f}x less, memory {d[2] / s[2]:.2f}x less")
        print(f"strata batch vs {name}: wall {d[0] / b[0]:.2f}x faster, CPU {d[1] / b[1]:.2f}x less, memory {d[2] / b[2]:.2f}x less")
    for name, (*_, out) in results.items():
        print(f"\n[{name}] {out.splitlines()[0] if out else ''}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
