"""Same run, same input: two `strata` binaries (e.g. the previous commit and this one) on the
batch path — `transform` (NDJSON → Parquet) and `batch` (bronze → silver Iceberg, 8 files and
40 files) — alternating A/B/A/B so drift of the machine hits both alike.

    python bench/compare_binaries.py BASE_BIN HEAD_BIN [EVENTS]     # default 2,000,000

Reports wall time, CPU time and peak RSS of each run (os.wait4), the pipeline state files a
batch run left in the lake (`catalog/state/`), and HEAD/BASE ratios.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time


def state_mb(lake):
    total = 0
    for root, _, files in os.walk(os.path.join(lake, "catalog", "state")):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total / 1e6


def measure(cmd, cwd):
    """(wall s, CPU s, peak RSS MB, seconds per commit over the first and the last 5 commits)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    commits = [start]
    for line in proc.stdout:
        # `[3/40] committed …` (runtime) or `  committed …` (before it): one line per commit.
        if b"] committed " in line or line.lstrip().startswith(b"committed "):
            commits.append(time.perf_counter())
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed: {proc.stderr.read().decode()[-2000:]}")
    gaps = [b - a for a, b in zip(commits, commits[1:])]
    first = sum(gaps[:5]) / len(gaps[:5]) if gaps else 0.0
    last = sum(gaps[-5:]) / len(gaps[-5:]) if gaps else 0.0
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, (first, last)


def main():
    base, head = sys.argv[1], sys.argv[2]
    events = int(sys.argv[3]) if len(sys.argv) > 3 else 2_000_000
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pipeline = os.path.join(root, "pipelines", "iot.yaml")
    work = tempfile.mkdtemp(prefix="strata-ab-")
    data = os.path.join(work, "events.ndjson")
    subprocess.run([head, "generate", "iot", "--events", str(events), "--malformed", "0.005",
                    "--invalid", "0.005", "--duplicates", "0.01", "--out", data], check=True,
                   stdout=subprocess.DEVNULL)
    lakes = {}
    for files in (8, 40):
        lake = os.path.join(work, f"bronze-{files}")
        subprocess.run([head, "bronze", "put", "--lake", lake, "--source", "iot", "--date",
                        "2025-11-20", "--input", data, "--lines-per-file",
                        str(-(-events // files))], check=True, stdout=subprocess.DEVNULL)
        lakes[files] = lake
    cases = {
        "transform": lambda b, d: [b, "transform", "--input", data, "--out", d, "--pipeline", pipeline],
        "batch, 8 bronze files": lambda b, d: [b, "batch", "--lake", d, "--source", "iot", "--pipeline", pipeline],
        "batch, 40 bronze files": lambda b, d: [b, "batch", "--lake", d, "--source", "iot", "--pipeline", pipeline],
    }
    results = {}
    for rnd in range(2):
        for name, cmd in cases.items():
            for label, binary in (("base", base), ("head", head)):
                run_dir = os.path.join(work, f"run-{label}-{rnd}-{len(results)}")
                if name.startswith("batch"):
                    files = 8 if "8 " in name else 40
                    shutil.copytree(lakes[files], run_dir)
                else:
                    os.makedirs(run_dir)
                wall, cpu, rss, per_commit = measure(cmd(binary, run_dir), work)
                results.setdefault((name, label), []).append(
                    (wall, cpu, rss, state_mb(run_dir), per_commit))
                shutil.rmtree(run_dir)
    print(f"\n{events:,} IoT events, {os.path.getsize(data) / 1e6:.0f} MB NDJSON, {os.cpu_count()} cores; best of 2\n")
    print("| case | base wall s | head wall s | head/base wall | base CPU s | head CPU s | base RSS MB | head RSS MB | base state MB | head state MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in cases:
        b = min(results[(name, "base")])
        h = min(results[(name, "head")])
        print(f"| {name} | {b[0]:.2f} | {h[0]:.2f} | {h[0] / b[0]:.2f} | {b[1]:.2f} | {h[1]:.2f} | {b[2]:.0f} | {h[2]:.0f} | {b[3]:.0f} | {h[3]:.0f} |")
    print("\nSeconds per commit (one bronze file each), mean of the first 5 and of the last 5 commits:\n")
    print("| case | base first | base last | base last/first | head first | head last | head last/first |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in cases:
        if not name.startswith("batch"):
            continue
        (bf, bl), (hf, hl) = min(results[(name, "base")])[4], min(results[(name, "head")])[4]
        print(f"| {name} | {bf:.3f} | {bl:.3f} | {bl / max(bf, 1e-9):.2f} | {hf:.3f} | {hl:.3f} | {hl / max(hf, 1e-9):.2f} |")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
