#!/usr/bin/env bash
# The ablations of docs/architecture.md's table: each patch in bench/ablations/ puts a crate where a
# hand-written module is, on a copy of the current commit; both builds are counted by
# bench/instructions.sh on both paths (callgrind, instructions per request).
#
#   bench/ablation.sh [seconds] [patch...]
#
# A patch is a measurement, not a product: it builds, serves both paths, and is never merged.
# Run it on every hyper or hyper-util upgrade (src/timed_io.rs says why): the figures say
# whether the hand-written pool and timers still buy what docs/architecture.md claims. The patches apply
# to the current tree; test.sh checks that they do (`git apply --check`), so a change to the
# files they touch brings them along.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-6}
shift || true
PATCHES=("$@")
[ ${#PATCHES[@]} -gt 0 ] || PATCHES=(bench/ablations/*.patch)

cargo build --release --locked -q
BASE=$(mktemp -d)
cp target/release/medmij-vert-proxy "$BASE/medmij-vert-proxy"
echo "== $(git rev-parse --short HEAD) as committed"
BIN="$BASE/medmij-vert-proxy" COUNT_NGINX=0 bench/instructions.sh "$SECONDS_RUN"
for patch in "${PATCHES[@]}"; do
  tree=$(mktemp -d)
  git worktree add -q --detach "$tree" HEAD
  git -C "$tree" apply "$PWD/$patch"
  # Its own target directory, so the committed build stays as it is.
  (cd "$tree" && RUSTFLAGS=-Awarnings cargo build --release -q)
  echo "== $(basename "$patch" .patch)"
  BIN="$tree/target/release/medmij-vert-proxy" COUNT_NGINX=0 bench/instructions.sh "$SECONDS_RUN"
  git worktree remove --force "$tree"
done
rm -rf "$BASE"
