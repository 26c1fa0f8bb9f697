# Sourced by the benchmark scripts (bench/run.sh, bench/memory.sh): the build they measure and
# the clean-up of what they start. Not a script of its own.

# BIN=path/to/another/build measures that build instead; otherwise a release build of this tree.
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -q
  BIN=$PWD/target/release/medmij-vert-proxy
fi

# A scratch directory, and the processes started (append their pids to PIDS): both gone on exit.
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
