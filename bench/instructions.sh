#!/usr/bin/env bash
# User-space instructions per proxied request, counted by valgrind's callgrind: steadier than
# requests/s on a shared machine. Counts medmij-vert-proxy and nginx (as a proxy) in front of
# the same upstream, on both paths: pass-through (nginx answering with a fixed 302) and the rule
# path (an authorization request, answered with a code redirect carrying the state and the
# signal; see bench/run.sh).
#
#   bench/instructions.sh [seconds]
#
# Only the measured run is counted (not start-up, warm-up or shutdown); its 16 connections
# are opened within it.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
UPSTREAM_PORT=18091
PROXY_PORT=18092

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need valgrind || ! need callgrind_annotate; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light valgrind >/dev/null
fi
# BIN=path/to/another/build counts that build instead (the ablations in docs/architecture.md);
# COUNT_NGINX=0 skips the nginx counts; KEEP=dir keeps the callgrind profiles there, for
# `callgrind_annotate --inclusive=yes dir/rule-path-medmij-vert-proxy.out`.
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -q
  BIN=$PWD/target/release/medmij-vert-proxy
fi

WORK=$(mktemp -d)
UPSTREAM_PID=
cleanup() { [ -n "$UPSTREAM_PID" ] && kill "$UPSTREAM_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

nginx_conf() { # name master body
  mkdir -p "$WORK/$1/logs"
  cat > "$WORK/$1/nginx.conf" <<EOF
worker_processes 1;
master_process $2;
daemon off;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; $3 }
EOF
}
nginx_conf upstream on "server { listen 127.0.0.1:$UPSTREAM_PORT;
    location / { return 302 /login?next=%2Fhome; }
    location = /oauth2/authorize { add_header X-Vert-Representation none;
      return 302 \"https://pgo.example.nl/callback?code=C0DE&state=\$arg_state\"; } }"
nginx_conf nginx off "upstream as { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server { listen 127.0.0.1:$PROXY_PORT; location / { proxy_pass http://as; proxy_http_version 1.1;
    proxy_set_header Connection \"\"; proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr; } }"
cat > "$WORK/proxy.toml" <<EOF
[listen]
addr = "127.0.0.1:$PROXY_PORT"
workers = 1
[upstream]
url = "http://127.0.0.1:$UPSTREAM_PORT"
[clients]
static = [ { hostname = "pgo.example.nl" } ]
[log]
level = "warn"
[store]
max_entries = 20000000
EOF

nginx -c "$WORK/upstream/nginx.conf" -p "$WORK/upstream" &
UPSTREAM_PID=$!
sleep 0.5

RULE_PATH="/oauth2/authorize?response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=abc123&scope=48"

count() { # name path command...
  local name=$1 path=$2; shift 2
  # Instrumentation is switched on only for the measured run: start-up, warm-up and shutdown
  # are not counted, so runs of different lengths give the same figure.
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/$name.%p.out" "$@" 2>/dev/null &
  local pid=$!
  sleep 4
  local total requests
  wrk -t1 -c16 -d2s "http://127.0.0.1:$PROXY_PORT$path" >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  requests=$(wrk -t1 -c16 -d"${SECONDS_RUN}s" "http://127.0.0.1:$PROXY_PORT$path" | awk '/requests in/ {print $1}')
  callgrind_control -i off "$pid" >/dev/null 2>&1
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  total=$(for f in "$WORK/$name".*.out; do callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; done | paste -sd+ | bc)
  printf '%-30s %8d requests  %6d instructions per request\n' "$name" "$requests" $((total / requests))
  if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP"
    for f in "$WORK/$name".*.out; do cp "$f" "$KEEP/${name// /-}.out"; done
  fi
  rm -f "$WORK/$name".*.out
}

count "pass-through medmij-vert-proxy" / "$BIN" --config "$WORK/proxy.toml"
[ "${COUNT_NGINX:-1}" = 0 ] || count "pass-through nginx" / nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
count "rule path medmij-vert-proxy" "$RULE_PATH" "$BIN" --config "$WORK/proxy.toml"
[ "${COUNT_NGINX:-1}" = 0 ] || count "rule path nginx" "$RULE_PATH" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
