"""Analytics API benchmark: `strata serve analytics` against FastAPI + DuckDB (the usual homemade
alternative, bench/analytics_baseline_fastapi.py, uvicorn with 2 workers) in the same run, both
over the same silver table of EVENTS IoT events (default 2,000,000) built by `strata batch`.
Load comes from `wrk` (Debian) on loopback, from a second process, for three shapes:

* a cached metric (`GET /metrics/readings?by=site`, the same request again and again);
* an uncached metric (the same with `Cache-Control: no-cache`: a group-by over every row);
* a `/query` over every row (`Cache-Control: no-cache`).

Before loading, both answers are checked equal. Prints requests/s and p50 / p99 latency per shape
and server, the ratios, and each server's peak RSS.

Usage (release build; wrk from Debian; FastAPI and uvicorn from PyPI in the venv):
    cargo build --release -p strata-cli
    apt-get install -y wrk
    $(scripts/python-env.sh)/bin/pip install fastapi==0.165.0 uvicorn==0.54.0
    python bench/analytics_bench.py [EVENTS] [SECONDS]
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata/target"))
STRATA = os.environ.get("STRATA_BIN", os.path.join(TARGET, "release", "strata"))
KEY = "bench-key-0123456789abcdef"
QUERY = ("SELECT device_id, count(*) AS n, max(temperature) AS max_temperature FROM iot_events "
         "GROUP BY device_id ORDER BY n DESC, device_id LIMIT 10")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, headers=None, body=None):
    h = {"Authorization": f"Bearer {KEY}", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=h, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def wait_up(url, proc):
    for _ in range(600):
        try:
            get(url)
            return
        except Exception:
            if proc.poll() is not None:
                sys.exit(f"server exited: {url}")
            time.sleep(0.1)
    sys.exit(f"server did not start: {url}")


def wrk(url, seconds, connections, headers, body=None):
    script = None
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    if body is not None:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write('wrk.method = "POST"\nwrk.body = ' + json.dumps(json.dumps(body)) +
                     '\nwrk.headers["Content-Type"] = "application/json"\n')
        script.close()
        args += ["-s", script.name]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    if script:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": pct(50), "p99": pct(99), "errors": int(non2xx.group(1)) if non2xx else 0}


def peak_rss_mb(pid):
    """Peak RSS of a process and its children (uvicorn workers), MB."""
    total = 0
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                    text=True).stdout.split()]
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def main():
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    d = tempfile.mkdtemp(prefix="analytics-bench-")
    lake = os.path.join(d, "lake")
    src = os.path.join(d, "iot.ndjson.zst")
    subprocess.run([STRATA, "generate", "iot", "--events", str(events), "--out", src], check=True,
                   capture_output=True)
    subprocess.run([STRATA, "bronze", "put", "--lake", lake, "--source", "iot", "--date", "2025-11-20",
                    "--input", src], check=True, capture_output=True)
    subprocess.run([STRATA, "batch", "--lake", lake, "--source", "iot", "--pipeline",
                    os.path.join(ROOT, "pipelines", "iot.yaml")], check=True, capture_output=True)
    config = os.path.join(d, "serve.yaml")
    with open(config, "w") as f:
        f.write(f"""lake: {lake}
query: {{max_rows: 10000, timeout_ms: 60000, memory_mb: 1024, max_concurrent: 8}}
auth:
  keys: [{{name: bench, key: {KEY}, requests_per_minute: 100000000}}]
metrics:
  readings:
    table: silver.iot_events
    time: ts
    measures:
      readings: {{agg: count}}
      avg_temperature: {{agg: avg, column: temperature}}
    dimensions:
      site: location_site
""")
    venv_bin = os.path.dirname(sys.executable)
    sport, fport = free_port(), free_port()
    strata = subprocess.Popen([STRATA, "serve", "analytics", "--config", config, "--listen",
                               f"127.0.0.1:{sport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data_glob = os.path.join(lake, "catalog", "warehouse", "silver", "iot_events", "data", "**", "*.parquet")
    fastapi = subprocess.Popen([os.path.join(venv_bin, "uvicorn"), "--app-dir", os.path.join(ROOT, "bench"),
                                "analytics_baseline_fastapi:app", "--port", str(fport), "--workers", "2",
                                "--log-level", "warning"],
                               env=dict(os.environ, DATA_GLOB=data_glob, API_KEY=KEY),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers = {"strata": f"http://127.0.0.1:{sport}", "fastapi+duckdb": f"http://127.0.0.1:{fport}"}
    try:
        for name, base in servers.items():
            wait_up(base + "/metrics/readings?by=site", strata if name == "strata" else fastapi)
        a = get(servers["strata"] + "/metrics/readings?by=site")["rows"]
        b = get(servers["fastapi+duckdb"] + "/metrics/readings?by=site")["rows"]
        assert [(r["site"], r["readings"]) for r in a] == [(r["site"], r["readings"]) for r in b], (a, b)
        qa = get(servers["strata"] + "/query", {"Cache-Control": "no-cache"}, {"sql": QUERY})["rows"]
        qb = get(servers["fastapi+duckdb"] + "/query", {"Cache-Control": "no-cache"}, {"sql": QUERY})["rows"]
        assert [(r["device_id"], r["n"]) for r in qa] == [(r["device_id"], r["n"]) for r in qb], (qa, qb)
        rows = sum(r["readings"] for r in a)
        auth = {"Authorization": f"Bearer {KEY}"}
        shapes = [
            ("cached metric", "/metrics/readings?by=site", auth, None, 32),
            ("uncached metric", "/metrics/readings?by=site", {**auth, "Cache-Control": "no-cache"}, None, 4),
            (f"/query over {rows:,} rows", "/query", {**auth, "Cache-Control": "no-cache"}, {"sql": QUERY}, 4),
        ]
        results = {}
        for shape, path, headers, body, conns in shapes:
            for name, base in servers.items():
                results[(shape, name)] = wrk(base + path, seconds, conns, headers, body)
        print(f"\n{rows:,} silver rows; wrk -t2, {seconds} s per cell, loopback, 2 cores shared by server and load\n")
        print("| shape | connections | Strata req/s | p50 / p99 ms | FastAPI+DuckDB req/s | p50 / p99 ms | Strata vs FastAPI (req/s) | non-2xx |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for shape, _, _, _, conns in shapes:
            s, f = results[(shape, "strata")], results[(shape, "fastapi+duckdb")]
            print(f"| {shape} | {conns} | {s['rps']:,.0f} | {s['p50']:.2f} / {s['p99']:.2f} | {f['rps']:,.0f} | "
                  f"{f['p50']:.2f} / {f['p99']:.2f} | {s['rps'] / f['rps']:.2f}× | {s['errors']} / {f['errors']} |")
        print(f"\npeak RSS: strata {peak_rss_mb(strata.pid):,.0f} MB, "
              f"fastapi+duckdb (2 workers + parent) {peak_rss_mb(fastapi.pid):,.0f} MB")
    finally:
        strata.terminate()
        fastapi.terminate()
        strata.wait()
        fastapi.wait()


if __name__ == "__main__":
    main()
