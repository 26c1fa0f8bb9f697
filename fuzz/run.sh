#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), one after the other, with the seed
# corpus in fuzz/seeds/<target> and a growing corpus in fuzz/corpus/<target> (not committed).
# Crashes land in fuzz/artifacts/<target>. Needs cargo-fuzz; the machine's stable toolchain is
# told to accept libFuzzer's nightly flags (RUSTC_BOOTSTRAP=1).
#
#   fuzz/run.sh [seconds] [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(authorize_query open_state inspect_location normalize_uri syntax token_body path_route)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  echo "== $target: ${SECONDS_EACH}s"
  cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 2>&1 \
    | grep -E "^(stat::|==|Done|#[0-9]+.*DONE)|ERROR|panicked|SUMMARY" || true
  found=$( (ls "fuzz/artifacts/$target" 2>/dev/null || true) | wc -l)
  echo "== $target: findings: $found"
done
