#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer, stable toolchain, no sanitizer: the code is
# safe Rust, so the findings are panics, aborts, overflows, timeouts and memory blow-ups) of
# every decoder of outside bytes: `scripts/fuzz.sh [seconds per target, default 30] [target…]`.
#
# Seeds are the corpora in fuzz/corpus/<target> (kept in the repo; new inputs libFuzzer finds go
# to fuzz/scratch/, which is not). A crash leaves its input in fuzz/artifacts/<target>/ and makes
# this script fail; reproduce with `cargo fuzz run -s none <target> <file>` in fuzz/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-30}"
shift || true
export CARGO_TARGET_DIR="${STRATA_FUZZ_TARGET_DIR:-$HOME/.cache/strata/fuzz-target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
flags=(-s none --codegen-units 16)
cargo fuzz build "${flags[@]}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
# Runs per target, with a fixed seed: the same inputs on every CI run (a run that finds nothing
# here finds nothing there), each about 10-20 s on this 2-core machine; `secs` caps the time on
# a slower one. `STRATA_FUZZ_EXPLORE=1` drops both for open-ended exploration.
declare -A runs=(
  [avro_confluent]=800000 [pg_copy_binary]=400000 [mysql_binlog]=60000
  [mysql_json_binary]=2000000 [parse_json]=8000 [webhook_verify]=300000 [registry_schema]=600000
)
failed=()
for t in "${targets[@]}"; do
  bound=(-seed=1 "-runs=${runs[$t]:-100000}")
  [ -n "${STRATA_FUZZ_EXPLORE:-}" ] && bound=()
  mkdir -p "scratch/$t" "corpus/$t"
  echo "== fuzz $t for ${secs}s"
  # Memory past 4 GiB, or one input taking over 10 s, is a finding too.
  rm -rf "scratch/$t" && mkdir -p "scratch/$t"
  if ! cargo fuzz run "${flags[@]}" "$t" "scratch/$t" "corpus/$t" -- "${bound[@]}" \
      -max_total_time="$secs" -rss_limit_mb=4096 -timeout=10 -max_len=262144 \
      -print_final_stats=1 2>&1 | tail -n 25; then
    failed+=("$t")
  fi
  # `tail` hides the exit status of the pipeline's first command: check for artifacts too.
  if compgen -G "artifacts/$t/*" >/dev/null; then
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets × ${secs}s, nothing found"
