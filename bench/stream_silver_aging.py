"""`strata stream silver` with 1-second commits for a long run: is a commit at minute 10 as cheap as
one at minute 1? Events are offered at a fixed rate into a one-partition topic of the local broker
while the driver commits every second; each commit's duration comes from the driver's own
`committed … (N ms)` line. Reports per minute: commits, mean / p50 / max commit ms, and the size of
the table's newest metadata file at the end.

    source $(scripts/services.sh env)
    python bench/stream_silver_aging.py [SECONDS] [RATE]      # default 600 s at 3,000 events/s

Needs a release build (`cargo build --release --bin strata`) and the pinned venv.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stream_bench import BROKERS, PIPELINE, STRATA, generate, produce, topics  # noqa: E402


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 3_000
    work = tempfile.mkdtemp(prefix="strata-silver-aging-")
    path = generate(work, int(seconds * rate))
    t_in, _, _ = topics("aging")
    lake = os.path.join(work, "lake")
    cmd = [STRATA, "stream", "silver", "--brokers", BROKERS, "--input-topic", t_in, "--group",
           t_in + "-g", "--partitions", "0", "--pipeline", PIPELINE, "--lake", lake,
           "--commit-interval-ms", "1000", "--stop-when-idle-ms", "30000"]
    cmd += os.environ.get("STRATA_DRIVER_ARGS", "").split()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    commits, other = [], []

    def read():
        for line in proc.stdout:
            m = re.search(r"^committed (\d+) rows.*\((\d+) ms\)", line.strip())
            if m:
                commits.append((time.perf_counter() - start, int(m.group(1)), int(m.group(2))))
            elif "WARN" in line or "ERROR" in line or "warning" in line or "stopped" in line:
                other.append((round(time.perf_counter() - start, 1), line.strip()[-200:]))

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(2)
    produce(t_in, path, rate)
    _, status, usage = os.wait4(proc.pid, 0)
    reader.join()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("the driver failed")
    print(f"\n{seconds} s at {rate:,.0f} events/s, commits every second, peak RSS "
          f"{usage.ru_maxrss / 1024:.0f} MB, {len(commits)} commits\n")
    print("| minute | commits | rows | mean commit ms | p50 ms | max ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for minute in range(int(seconds // 60) + 1):
        part = [c for c in commits if minute * 60 <= c[0] - 2 < (minute + 1) * 60]
        if not part:
            continue
        ms = sorted(c[2] for c in part)
        print(f"| {minute + 1} | {len(part)} | {sum(c[1] for c in part):,} | "
              f"{sum(ms) / len(ms):.1f} | {ms[len(ms) // 2]} | {ms[-1]} |")
    meta = sorted(glob.glob(os.path.join(lake, "catalog", "warehouse", "*", "*", "metadata",
                                         "*.metadata.json")), key=os.path.getmtime)
    if meta:
        print(f"\nnewest metadata file: {os.path.getsize(meta[-1]) / 1e6:.2f} MB")
    for t, line in other[-8:]:
        print(f"[{t} s] {line}")


if __name__ == "__main__":
    main()
