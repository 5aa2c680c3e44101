"""The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core
(crates/serving/dashboard/check.mjs), on the page `strata serve analytics` serves at `/` over the
lake `strata demo` built, with the shipped `deploy/analytics/serve.yaml`:

* the page loads with no console errors, and every chart has data;
* the number each panel shows equals the API's answer for the same metric;
* new IoT events landed through the real chain (generate → bronze put → batch → models run) move
  the charts without a reload;
* a screenshot is kept under the target dir (`$CARGO_TARGET_DIR/artifacts/dashboard.png`).
"""
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from test_analytics_api import KEY, STRATA, call, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASH = ROOT / "crates" / "serving" / "dashboard"
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/strata/target"))
NEXT_DAY_MS = 1_763_646_312_000 + 86_400_000


def run(*args, cwd):
    out = subprocess.run([STRATA, *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.fixture
def served(tmp_path):
    missing = [p for p in ("/usr/bin/chromium", shutil.which("node") or "", DASH / "node_modules" / "playwright-core")
               if not pathlib.Path(p).exists()]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing {missing}: scripts/services.sh up and scripts/dashboard-assets.sh install them")
        pytest.skip(f"missing {missing}")
    run("demo", "--out", str(tmp_path / "demo"), "--events", "20000", cwd=tmp_path)
    lake = next((tmp_path / "demo").glob("run-*"))
    port = free_port()
    log = open(tmp_path / "api.log", "w")
    proc = subprocess.Popen(
        [STRATA, "serve", "analytics", "--config", str(ROOT / "deploy/analytics/serve.yaml"),
         "--lake", str(lake), "--listen", f"127.0.0.1:{port}"],
        env=dict(os.environ, STRATA_API_KEY=KEY), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if call(base + "/health", key=None)[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    yield base, lake, tmp_path
    proc.terminate()
    proc.wait(timeout=30)


def api_total(base, panel):
    """The panel's headline: its measure over everything, as the API answers it."""
    status, _, body = call(f"{base}/metrics/{panel['metric']}?measures={panel['measure']}")
    assert status == 200, body
    return float(json.loads(body)["rows"][0][panel["measure"]])


def api_points(base, panel):
    by = panel["by"] + ("," + panel["split"] if panel["split"] else "")
    status, _, body = call(f"{base}/metrics/{panel['metric']}?measures={panel['measure']}&by={by}")
    assert status == 200, body
    return len(json.loads(body)["rows"])


def test_dashboard_shows_the_apis_numbers_and_moves_live(served):
    base, lake, d = served
    shot = TARGET / "artifacts" / "dashboard.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    browser = subprocess.Popen(["node", str(DASH / "check.mjs"), f"{base}/#key={KEY}", str(shot)],
                               cwd=DASH, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        loaded = json.loads(browser.stdout.readline() or "{}")
        assert loaded.get("phase") == "loaded", browser.stderr.read()
        assert loaded["console_errors"] == [] and loaded["errors"] == [], loaded
        assert len(loaded["panels"]) == 5
        for p in loaded["panels"]:
            assert p["points"] > 0 and p["canvas"] and p["series"] >= 1, p
            assert abs(p["shown"] - api_total(base, p)) < 1e-6 * max(1, abs(p["shown"])), p
            assert p["points"] == api_points(base, p), p
        health = {h["name"]: h["rows"] for h in loaded["health"]}
        assert health["silver.iot_events"] > 19000 and "gold.fact_orders" in health

        # New readings for the next day, through the real chain; the page is not reloaded.
        run("generate", "iot", "--events", "3000", "--seed", "77", "--start-ms", str(NEXT_DAY_MS),
            "--out", "more.ndjson.zst", cwd=d)
        run("bronze", "put", "--lake", str(lake), "--source", "iot", "--date", "2025-11-21",
            "--input", "more.ndjson.zst", cwd=d)
        run("batch", "--lake", str(lake), "--source", "iot", "--pipeline", str(ROOT / "pipelines/iot.yaml"), cwd=d)
        run("models", "run", "--lake", str(lake), "--models", str(ROOT / "models"), cwd=d)
        browser.stdin.write("next\n")
        browser.stdin.flush()
        moved = json.loads(browser.stdout.readline() or "{}")
        assert moved.get("phase") == "moved", browser.stderr.read()
        assert moved["moved"] and not moved["reloaded"], moved
        assert moved["console_errors"] == [], moved
        readings = next(p for p in moved["panels"] if p["title"] == "IoT readings per hour")
        before = next(p for p in loaded["panels"] if p["title"] == "IoT readings per hour")
        assert readings["total"] > before["total"] and readings["points"] > before["points"]
        assert abs(readings["shown"] - api_total(base, readings)) < 1e-6 * readings["shown"]
        assert {h["name"]: h["rows"] for h in moved["health"]}["silver.iot_events"] > health["silver.iot_events"]
        assert shot.exists() and shot.stat().st_size > 10_000
    finally:
        browser.kill()
        browser.wait()
