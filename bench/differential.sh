#!/usr/bin/env bash
# The differential harness (issue 27; tests/it/differential.rs) for any count and seed, on a
# release build: every generated request through the proxy, every forwarded one replayed to
# the real readers of tests/differential/ (installed here when missing).
#
#   bench/differential.sh [count] [seed]      (defaults: 1000000, 27)
#
# It prints the count generated and forwarded per route and the time taken; a differential
# found is printed shrunk, with the request as sent and as forwarded, and the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-1000000}
SEED=${2:-27}
tests/differential/install.sh
DIFFERENTIAL_COUNT=$COUNT DIFFERENTIAL_SEED=$SEED \
  cargo test --release --locked --test it differential:: -- --nocapture --test-threads 1
