"""The wheel as a user gets it: installed into a fresh virtualenv it imports, runs a pipeline and
gives the `strata` command; its stubs type-check an example under `mypy --strict`."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

import needs

ROOT = pathlib.Path(__file__).resolve().parents[3]
HERE = pathlib.Path(__file__).resolve().parents[1]


def wheel() -> pathlib.Path:
    path = os.environ.get("STRATA_WHEEL")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("STRATA_WHEEL is not set (scripts/test.sh builds the wheel)")
        pytest.skip("STRATA_WHEEL is not set")
    return pathlib.Path(path)


def test_the_wheel_installs_into_a_fresh_venv(tmp_path: pathlib.Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel())],
        check=True,
    )
    script = (
        "import pathlib, pyarrow as pa, strata\n"
        f"spec = pathlib.Path({str(ROOT / 'pipelines' / 'iot.yaml')!r})\n"
        "p = strata.Pipeline.from_yaml(spec)\n"
        "raw = pa.array([b'{}', b'nope'], pa.binary())\n"
        "n = 2\n"
        "b = pa.RecordBatch.from_arrays([raw, pa.array(['s'] * n), pa.array([0] * n, pa.timestamp('us', tz='UTC')),"
        " pa.array(['f'] * n), pa.array([1, 2], pa.uint64())], schema=strata.file_input_schema())\n"
        "rows, q = p.process(b)\n"
        "print(rows.num_rows, q.num_rows)\n"
    )
    out = subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["0", "2"]
    version = subprocess.run(
        [str(venv / "bin" / "strata"), "--version"], check=True, capture_output=True, text=True
    )
    assert version.stdout.startswith("strata ")
    bad = subprocess.run([str(venv / "bin" / "strata"), "batch"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--source" in bad.stderr


def test_the_stubs_pass_mypy_strict() -> None:
    needs.module("mypy")
    out = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", str(HERE / "examples" / "typed_usage.py"),
            # The package's own Python sources too (strata.airflow is checked in Airflow's venv).
            *(str(HERE / "python" / "strata" / f) for f in ["__init__.py", "errors.py", "_cli.py", "spark.py"]),
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
