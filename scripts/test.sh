#!/usr/bin/env bash
# Runs every test of the workspace: format, lints, unit + integration + property tests, doctests.
# The README's test command; .ci/run calls it on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strata/target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

echo "== servers the integration tests use (scripts/services.sh)"
./scripts/services.sh up
trap './scripts/services.sh down >/dev/null' EXIT
# shellcheck disable=SC1090
source "$(./scripts/services.sh env)"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace --no-fail-fast -- --test-threads 2
echo "== The Python wheel (maturin build), installed as a user would, and its tests"
VENV="$(./scripts/python-env.sh)"
AIRFLOW_VENV="${STRATA_AIRFLOW_VENV:-$HOME/.cache/strata/airflow-venv}"
# The shared target dir: the wheel depends on arrow-pyarrow, not on arrow's `pyarrow` feature, so
# only pyo3 and the extension itself are built again for it.
WHEELS="$CARGO_TARGET_DIR/wheels"
rm -rf "$WHEELS"
(cd crates/bindings-py && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" \
  maturin build -q --profile dev -o "$WHEELS")
export STRATA_WHEEL="$(ls "$WHEELS"/strata_py-*.whl)"
for v in "$VENV" "$AIRFLOW_VENV"; do
  "$v/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$STRATA_WHEEL"
done
(cd crates/bindings-py && "$VENV/bin/python" -m pytest -q tests)
echo "== Dashboard assets (uPlot as vendored = the npm lockfile's; playwright-core for the browser test)"
./scripts/dashboard-assets.sh --check
echo "== Independent readers (pyiceberg on silver tables written by strata), the API, the dashboard in chromium"
STRATA_BIN="$CARGO_TARGET_DIR/debug/strata" "$VENV/bin/python" -m pytest -q tests/python
echo "== all tests passed"
