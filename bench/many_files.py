"""Many small bronze files: `strata batch` (bronze → silver Iceberg) against DuckDB doing the same
transform (bench/duckdb_iot.py) over the same bronze objects, in the same run.

The shape is how bronze looks when something else writes it (Kafka Connect S3 sinks, Firehose,
a `stream bronze` that flushes every few seconds): EVENTS generated IoT events cut into files of
LINES lines, for each LINES given. Reports, per case: wall time, CPU time and peak RSS of each
process (os.wait4, so each figure is that child's own), the commits strata made and the seconds per
bronze file over the first and the last commits (flat = commit cost does not grow with the table).

    python bench/many_files.py [EVENTS] [LINES ...]     # default 2,000,000 and 50000 2000

Needs a release build (`cargo build --release --bin strata`) and the pinned venv
(`scripts/python-env.sh`: duckdb). STRATA_BIN overrides the binary.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata/target"))
STRATA = os.environ.get("STRATA_BIN", os.path.join(TARGET, "release", "strata"))


def measure(cmd):
    """(wall s, CPU s, peak RSS MB, output lines with the time each was read)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:
        lines.append((time.perf_counter() - start, line.decode(errors="replace").rstrip()))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd} failed:\n" + "\n".join(l for _, l in lines[-20:]))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, lines


def commits(lines):
    """[(seconds since the previous commit, files it covered)] from `[k/n] committed` lines."""
    out, last_t, last_k = [], 0.0, 0
    for t, line in lines:
        m = re.search(r"\[(\d+)/(\d+)\] committed", line)
        if m:
            k = int(m.group(1))
            out.append((t - last_t, k - last_k))
            last_t, last_k = t, k
    return out


def per_file(cs, which):
    """Seconds per file over the first or last 5 commits."""
    part = cs[:5] if which == "first" else cs[-5:]
    files = sum(f for _, f in part)
    return sum(s for s, _ in part) / files if files else 0.0


def main():
    args = sys.argv[1:]
    events = int(args[0]) if args else 2_000_000
    sizes = [int(a) for a in args[1:]] or [50_000, 2_000]
    work = tempfile.mkdtemp(prefix="strata-many-")
    data = os.path.join(work, "iot.ndjson")
    subprocess.run([STRATA, "generate", "iot", "--events", str(events), "--malformed", "0.005",
                    "--invalid", "0.005", "--duplicates", "0.01", "--out", data], check=True,
                   cwd=ROOT, capture_output=True)
    size_mb = os.path.getsize(data) / 1e6
    venv_python = os.path.join(os.path.expanduser("~/.cache/strata/venv/bin"), "python")
    python = venv_python if os.path.exists(venv_python) else sys.executable
    rows = []
    for lines_per_file in sizes:
        lake = os.path.join(work, f"lake-{lines_per_file}")
        subprocess.run([STRATA, "bronze", "put", "--lake", lake, "--source", "iot", "--date",
                        "2025-11-20", "--input", data, "--lines-per-file", str(lines_per_file)],
                       check=True, cwd=ROOT, capture_output=True)
        files = sorted(glob.glob(os.path.join(lake, "bronze", "source=iot", "*", "*")))
        cases = [
            ("strata batch (default commit policy)",
             [STRATA, "batch", "--lake", lake, "--source", "iot", "--pipeline", "pipelines/iot.yaml"]),
            ("strata batch --commit-files 1",
             [STRATA, "batch", "--lake", lake, "--source", "iot", "--pipeline", "pipelines/iot.yaml",
              "--full-refresh", "--commit-files", "1"]),
            ("duckdb threads=2",
             [python, "bench/duckdb_iot.py", os.path.join(lake, "bronze", "source=iot", "*", "*"),
              os.path.join(work, f"duck-{lines_per_file}"), "2"]),
        ]
        for name, cmd in cases:
            wall, cpu, rss, lines = measure(cmd)
            cs = commits(lines)
            rows.append((len(files), name, wall, cpu, rss, len(cs), per_file(cs, "first"),
                         per_file(cs, "last"), lines[-1][1] if lines else ""))
    print(f"\n{events:,} IoT events, {size_mb:.0f} MB NDJSON, {os.cpu_count()} cores\n")
    print("| files | run | wall s | CPU s | peak RSS MB | commits | s/file first 5 commits | s/file last 5 commits |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for files, name, wall, cpu, rss, n, first, last, _ in rows:
        c = f"{n}" if n else "—"
        f1 = f"{first:.4f}" if n else "—"
        f2 = f"{last:.4f}" if n else "—"
        print(f"| {files} | {name} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {c} | {f1} | {f2} |")
    print()
    by = {(r[0], r[1]): r for r in rows}
    for files in sorted({r[0] for r in rows}):
        d = by[(files, "duckdb threads=2")]
        for name in ("strata batch (default commit policy)", "strata batch --commit-files 1"):
            s = by[(files, name)]
            print(f"{files} files, {name} vs duckdb threads=2: wall {d[2] / s[2]:.2f}x, "
                  f"CPU {d[3] / s[3]:.2f}x, memory {d[4] / s[4]:.2f}x (above 1 = strata better)")
    for r in rows:
        print(f"[{r[0]} files, {r[1]}] {r[8]}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
