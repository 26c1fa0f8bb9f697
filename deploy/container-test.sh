#!/usr/bin/env bash
# The container image, checked in a real container engine (podman with runc, as root): the
# runtime stage of the Dockerfile as shipped, built around the freshly built binary.
#
#   deploy/container-test.sh [path/to/medmij-vert-proxy]     (default: target/debug/…)
#
# Base images cannot be pulled here (no registry is reachable), so the stage's base,
# gcr.io/distroless/cc-debian12:nonroot, is stood in for by one this script assembles from the
# host's own files: the shared libraries the binary links (ldd), /etc/passwd and /etc/group
# with distroless's `nonroot` (65532), CA roots, an empty /tmp. No shell, no package manager,
# as in distroless. Every other line of the stage is the Dockerfile's own.
#
# Checks: without /secrets/state.key the container refuses to start and names the file; the
# demo serves on 0.0.0.0 as nonroot; the HEALTHCHECK is healthy while the AS is down; SIGTERM
# exits 0 within listen.shutdown_grace; a read-only root filesystem works.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/medmij-vert-proxy}
[ -x "$BIN" ] || cargo build --locked

if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends podman runc >/dev/null
fi

WORK=$(mktemp -d)
# Said up front: a full disk shows up later only as podman's "broken pipe" mid-COPY.
echo "container: $(df -h --output=avail "$WORK" | tail -n 1 | tr -d ' ') free under $WORK"
# A store of its own: nothing of the machine's podman is touched, and all of it goes at the end.
P=(podman --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs --runtime runc
   --cgroup-manager cgroupfs --events-backend none)
# This sandbox withholds CAP_SYS_RESOURCE, so runc may only lower limits (podman's defaults would
# raise them); no systemd runs the HEALTHCHECK's timer here, so the check is run by hand
# (`podman healthcheck run`).
RUN=(run --ulimit nofile=8192:8192 --ulimit nproc=4096:4096 --health-interval disable)
cleanup() {
  "${P[@]}" rm -af -t 0 >/dev/null 2>&1 || true
  "${P[@]}" rmi -af >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# --- the stand-in base -----------------------------------------------------------------------
BASE=$WORK/base
mkdir -p "$BASE/rootfs/etc/ssl/certs" "$BASE/rootfs/tmp" "$BASE/rootfs/home/nonroot"
chmod 1777 "$BASE/rootfs/tmp"
for lib in $(ldd "$BIN" | grep -o '/[^ ]*'); do
  mkdir -p "$BASE/rootfs$(dirname "$lib")"
  cp -L "$lib" "$BASE/rootfs$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$BASE/rootfs/etc/ssl/certs/" 2>/dev/null || true
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$BASE/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$BASE/rootfs/etc/group"
chown 65532:65532 "$BASE/rootfs/home/nonroot"
printf 'FROM scratch\nCOPY rootfs/ /\n' > "$BASE/Containerfile"
"${P[@]}" build -q --network none -t gcr.io/distroless/cc-debian12:nonroot "$BASE" >/dev/null

# --- the runtime stage, as the Dockerfile writes it ------------------------------------------
CTX=$WORK/image
mkdir -p "$CTX/deploy"
cp "$BIN" "$CTX/medmij-vert-proxy"
# Stripped, as the Dockerfile's build stage strips it: podman's vfs store copies every layer in
# full, once per container run, so an unstripped binary costs disk several times over.
command -v strip >/dev/null 2>&1 && strip "$CTX/medmij-vert-proxy"
cp deploy/container.toml deploy/demo.toml "$CTX/deploy/"
# From the runtime stage's FROM on; the build stage's binary is the one just built.
sed -n '/^FROM gcr.io\/distroless/,$p' Dockerfile \
  | sed 's|^COPY --from=build /src/target/release/medmij-vert-proxy |COPY medmij-vert-proxy |' \
  > "$CTX/Containerfile"
grep -q '^COPY medmij-vert-proxy ' "$CTX/Containerfile" || { echo "the Dockerfile's runtime stage changed shape"; exit 1; }
"${P[@]}" build -q --network none --format docker -t medmij-vert-proxy:test "$CTX" >/dev/null
IMAGE=medmij-vert-proxy:test

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# The demo's answer through the published port, once it listens (at most 30 s).
wait_http() {
  for _ in $(seq 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
    [ "$code" != "000" ] && { echo "$code"; return 0; }
    sleep 0.1
  done
  echo 000
}

# 1. Without its key file it refuses to start, and says which file.
code=0
out=$("${P[@]}" "${RUN[@]}" --rm --network none "$IMAGE" 2>&1) || code=$?
if [ "$code" != 0 ] && grep -q '/secrets/state.key' <<<"$out" && grep -q 'state.key_file' <<<"$out"; then
  ok "without /secrets/state.key the container refuses to start, naming it (exit $code)"
else
  fail "refuses without its key file: exit $code: $out"
fi

# 2. The demo serves on 0.0.0.0 inside, as nonroot.
port=$(free_port)
cid=$("${P[@]}" "${RUN[@]}" -d -p "127.0.0.1:$port:8080" "$IMAGE" demo)
code=$(wait_http "http://127.0.0.1:$port/oauth2/authorize?response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=s&scope=48")
user=$("${P[@]}" top "$cid" user huser 2>/dev/null | tail -n +2 | head -n1 || true)
if [ "$code" = 200 ] && grep -Eq '^nonroot|65532' <<<"$user"; then
  ok "the demo serves on 0.0.0.0 as nonroot (HTTP $code; user: $user)"
else
  fail "the demo: HTTP $code, user '$user': $("${P[@]}" logs "$cid" 2>&1 | tail -n 5)"
fi
"${P[@]}" rm -f -t 0 "$cid" >/dev/null

# 3-5. The shipped config with its files mounted, the AS nowhere: healthy (liveness), not
# ready; read-only root; SIGTERM ends it with 0 within the grace.
mkdir -p "$WORK/config" "$WORK/secrets"
cp examples/ocl.xml "$WORK/config/ocl.xml"
"$BIN" genkey > "$WORK/secrets/state.key"
chmod 644 "$WORK/secrets/state.key" "$WORK/config/ocl.xml"
port=$(free_port)
admin=$(free_port)
cid=$("${P[@]}" "${RUN[@]}" -d --read-only -p "127.0.0.1:$port:8080" -p "127.0.0.1:$admin:9901" \
  -v "$WORK/config:/config:ro" -v "$WORK/secrets:/secrets:ro" "$IMAGE")
live=$(wait_http "http://127.0.0.1:$admin/live")
ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/ready" || true)
if "${P[@]}" healthcheck run "$cid" >/dev/null 2>&1; then health=healthy; else health=unhealthy; fi
if [ "$live" = 200 ] && [ "$ready" = 503 ] && [ "$health" = healthy ]; then
  ok "HEALTHCHECK healthy while the AS is down (/live $live, /ready $ready)"
else
  fail "while the AS is down: /live $live, /ready $ready, HEALTHCHECK $health: $("${P[@]}" logs "$cid" 2>&1 | tail -n 5)"
fi
ro=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/oauth2/authorize?response_type=code&client_id=unknown.example&redirect_uri=https%3A%2F%2Funknown.example%2Fcb&state=s" || true)
if [ "$ro" = 400 ]; then
  ok "a read-only root filesystem works (a 1a page served: HTTP $ro)"
else
  fail "read-only root: HTTP $ro"
fi
grace=$(sed -n 's/^shutdown_grace *= *"\([0-9]*\)s".*/\1/p' deploy/container.toml)
grace=${grace:-10}
start=$(date +%s%N)
"${P[@]}" stop -t 30 "$cid" >/dev/null
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
exit_code=$("${P[@]}" inspect --format '{{.State.ExitCode}}' "$cid")
if [ "$exit_code" = 0 ] && [ "$took_ms" -le $((grace * 1000)) ]; then
  ok "SIGTERM: exit 0 in ${took_ms} ms (listen.shutdown_grace ${grace}s)"
else
  fail "SIGTERM: exit $exit_code after ${took_ms} ms (grace ${grace}s)"
fi

echo "container: $passed passed, $failed failed"
[ "$failed" = 0 ]
