#!/usr/bin/env bash
# Memory (issue 31): the resident set (VmRSS) of medmij-vert-proxy beside nginx's in the same
# set-up (one worker each, in front of the same upstream, as bench/instructions.sh):
#   idle:      after start-up, nothing connected;
#   keepalive: N client connections, each after one request (pass-through), held open idle;
#   in flight: F authorization requests (the rule path) held by an upstream that answers after
#              10 s, so each flow is inside the proxy (query parsed, state sealed, forwarded);
#   churn:     the proxy alone under wrk for S seconds on pass-through, a new client
#              connection for every request (Connection: close), its RSS sampled every 10 s: it
#              fails when the last sample is more than 10 % and 4 MiB above the first (growth
#              per connection would show there). Pass-through, because every rule-path request
#              records its flow for state.flow_ttl (by design, bounded by store.max_entries):
#              that growth is the records', not the connections'.
#
#   bench/memory.sh [N=10000] [F=1000] [S=60]
#
# A benchmark, not a test; CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE_CONNS=${1:-10000}
FLOWS=${2:-1000}
CHURN_SECONDS=${3:-60}
UPSTREAM_PORT=18101
SLOW_PORT=18102
PROXY_PORT=18103

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + FLOWS * 2 + 100)) ]; then
  echo "open files limited to $(ulimit -n): too few for $IDLE_CONNS connections" >&2; exit 2
fi
# The build (BIN=, or a release build), WORK and PIDS, cleaned up on exit.
source bench/common.sh

RULE_PATH="/oauth2/authorize?response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=abc123&scope=48"

nginx_conf() { # name body
  mkdir -p "$WORK/$1/logs"
  cat > "$WORK/$1/nginx.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/logs/error.log error;
events { worker_connections 32768; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 600s; $2 }
CONF
}
nginx_conf upstream "server { listen 127.0.0.1:$UPSTREAM_PORT backlog=4096;
    location / { return 302 /login?next=%2Fhome; }
    location = /oauth2/authorize { add_header X-Vert-Representation none;
      return 302 \"https://pgo.example.nl/callback?code=C0DE&state=\$arg_state\"; } }"
proxy_nginx_conf() { # name upstream-port
  nginx_conf "$1" "upstream as { server 127.0.0.1:$2; keepalive 128; }
  server { listen 127.0.0.1:$PROXY_PORT backlog=4096; location / { proxy_pass http://as; proxy_http_version 1.1;
    proxy_read_timeout 60s; proxy_set_header Connection \"\"; proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$remote_addr; } }"
}
proxy_nginx_conf nginx-fast $UPSTREAM_PORT
proxy_nginx_conf nginx-slow $SLOW_PORT
proxy_conf() { # name upstream-port
  cat > "$WORK/$1.toml" <<CONF
[listen]
addr = "127.0.0.1:$PROXY_PORT"
workers = 1
max_connections = $((IDLE_CONNS * 2))
idle_timeout = "600s"
[upstream]
url = "http://127.0.0.1:$2"
response_timeout = "60s"
[clients]
static = [ { hostname = "pgo.example.nl" } ]
[log]
level = "error"
[store]
max_entries = 20000000
CONF
}
proxy_conf proxy-fast $UPSTREAM_PORT
proxy_conf proxy-slow $SLOW_PORT

nginx -c "$WORK/upstream/nginx.conf" -p "$WORK/upstream" &
PIDS+=($!)
python3 bench/slow_upstream.py $SLOW_PORT 10 &
PIDS+=($!)
sleep 0.5

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# (Functions that start processes set globals instead of printing: a command substitution
# would wait for the process's output to close.)
start() { # which(proxy|nginx) speed(fast|slow): starts it, its pid in PID
  if [ "$1" = proxy ]; then
    "$BIN" --config "$WORK/proxy-$2.toml" >/dev/null 2>&1 &
  else
    nginx -c "$WORK/nginx-$2/nginx.conf" -p "$WORK/nginx-$2" >/dev/null 2>&1 &
  fi
  PID=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PROXY_PORT) 2>/dev/null && break; sleep 0.1; done
}
stop() { kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; sleep 0.5; }
hold() { # pid count path wait: the RSS (KiB) while count connections are held, in HELD
  local fifo=$WORK/hold.in out=$WORK/hold.out
  rm -f "$fifo"; mkfifo "$fifo"
  python3 bench/hold.py $PROXY_PORT "$2" "$3" "$4" <"$fifo" >"$out" 2>&1 &
  local holder=$!
  exec 7>"$fifo"
  for _ in $(seq 600); do grep -q ready "$out" 2>/dev/null && break; sleep 0.1; done
  sleep 2
  HELD=$(rss_kib "$1")
  grep -q "ready $2" "$out" || echo "warning: $(tail -3 "$out") of $2 connections held" >&2
  exec 7>&-
  wait "$holder" 2>/dev/null || true
}

printf '%-18s %-24s %10s\n' target measure "RSS MiB"
for which in proxy nginx; do
  start "$which" fast
  sleep 1
  idle=$(rss_kib "$PID")
  printf '%-18s %-24s %10s\n' "$which" "idle" "$(mib "$idle")"
  hold "$PID" "$IDLE_CONNS" / answer
  printf '%-18s %-24s %10s  (%d bytes per connection)\n' "$which" "$IDLE_CONNS keep-alive idle" "$(mib "$HELD")" $(((HELD - idle) * 1024 / IDLE_CONNS))
  stop "$PID"
  start "$which" slow
  sleep 1
  idle=$(rss_kib "$PID")
  hold "$PID" "$FLOWS" "$RULE_PATH" sent
  printf '%-18s %-24s %10s  (%d bytes per flow)\n' "$which" "$FLOWS flows in flight" "$(mib "$HELD")" $(((HELD - idle) * 1024 / FLOWS))
  stop "$PID"
done

# Churn: a new connection for every request, for CHURN_SECONDS.
start proxy fast
pid=$PID
wrk -t1 -c16 -d"${CHURN_SECONDS}s" -H "Connection: close" "http://127.0.0.1:$PROXY_PORT/" >"$WORK/wrk.out" &
wrk_pid=$!
samples=()
for _ in $(seq $((CHURN_SECONDS / 10))); do
  sleep 10
  samples+=("$(rss_kib "$pid")")
done
wait "$wrk_pid" || true
requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
stop "$pid"
line=""
for s in "${samples[@]}"; do line+="$(mib "$s") "; done
printf 'proxy churn (pass-through), %s s, %s requests on as many connections: RSS MiB every 10 s: %s\n' "$CHURN_SECONDS" "$requests" "$line"
first=${samples[0]} last=${samples[-1]}
if [ "$last" -gt $((first + first / 10)) ] && [ "$last" -gt $((first + 4096)) ]; then
  echo "memory: RSS grew from $(mib "$first") to $(mib "$last") MiB under churn" >&2
  exit 1
fi
