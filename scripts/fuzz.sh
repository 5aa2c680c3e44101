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
failed=()
for t in "${targets[@]}"; do
  mkdir -p "scratch/$t" "corpus/$t"
  echo "== fuzz $t for ${secs}s"
  # Memory past 4 GiB, or one input taking over 10 s, is a finding too.
  if ! cargo fuzz run "${flags[@]}" "$t" "scratch/$t" "corpus/$t" -- \
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
