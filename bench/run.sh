#!/usr/bin/env bash
# Benchmark: direct to a fast upstream, through medmij-vert-proxy, and through nginx,
# interleaved in one run (A B C A B C ...), on loopback.
#
#   bench/run.sh [pinned|shared|both] [rounds] [seconds] [connections] [pass|rule]
#
# pass (pass-through): the upstream is nginx answering every request with a fixed 302 (an
# AS-internal redirect, so the proxy's Location inspection runs on every response).
# rule (the rule path): every request is an authorization request; the upstream answers it
# with a 302 to the redirect_uri carrying a code, the state it received and the signal
# (X-Vert-Representation: none), so one request runs the whole rule path: parse and check the
# query, seal, forward, know the state as the one sealed on this request (an AS that answers at
# once; a return after a login page opens it, about 1,700 instructions more: see
# docs/benchmarks.md), check the signal, record the flow, release. nginx,
# the anchor, proxies the same request. Both proxies run one worker:
# medmij-vert-proxy with listen.workers = 1, nginx with worker_processes 1, proxy_pass to an
# upstream block with keepalive and proxy_http_version 1.1.
#
# pinned: wrk on core 0, upstream and proxies on core 1 (quiet, about ±5 %).
# shared: no pinning (noisy, about ±15 %).
# This is a benchmark, not a test: nothing here asserts a number.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-both}
ROUNDS=${2:-5}
SECONDS_PER_RUN=${3:-10}
CONNECTIONS=${4:-64}
SCENARIO=${5:-pass}
case $SCENARIO in
  pass) TARGET_PATH=/ ;;
  rule) TARGET_PATH="/oauth2/authorize?response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=abc123&scope=48" ;;
  *) echo "scenario: pass or rule" >&2; exit 2 ;;
esac
UPSTREAM_PORT=18081
VERT_PORT=18082
NGINX_PORT=18083

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need taskset; then
  echo "installing wrk, nginx (Debian packages)..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light util-linux >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx util-linux >/dev/null
fi

for port in $UPSTREAM_PORT $VERT_PORT $NGINX_PORT; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
    echo "port $port is in use: stop what listens there first" >&2; exit 1
  fi
done

# The build (BIN=, or a release build), WORK and PIDS, cleaned up on exit.
source bench/common.sh

nginx_conf() { # name port body
  mkdir -p "$WORK/$1/logs"
  cat > "$WORK/$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  $3
}
EOF
}

nginx_conf upstream $UPSTREAM_PORT "server { listen 127.0.0.1:$UPSTREAM_PORT;
    location / { return 302 /login?next=%2Fhome; }
    location = /oauth2/authorize { add_header X-Vert-Representation none;
      return 302 \"https://pgo.example.nl/callback?code=C0DE&state=\$arg_state\"; } }"
nginx_conf nginx $NGINX_PORT "upstream as { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server { listen 127.0.0.1:$NGINX_PORT;
    location / { proxy_pass http://as; proxy_http_version 1.1; proxy_set_header Connection \"\";
                 proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr; } }"

cat > "$WORK/proxy.toml" <<EOF
[listen]
addr = "127.0.0.1:$VERT_PORT"
workers = 1
[upstream]
url = "http://127.0.0.1:$UPSTREAM_PORT"
[clients]
static = [ { hostname = "pgo.example.nl", name = "Voorbeeld PGO" } ]
[log]
level = "warn"
[store]
# Every request is a new flow, kept for state.flow_ttl: room for a whole run, all of it from
# the one source wrk is (at 5 %, its share filled within seven rounds, and releases failed
# closed).
max_entries = 20000000
source_share_percent = 100
EOF

start() { # cpu-list command...
  local cpus=$1; shift
  if [ "$cpus" = "-" ]; then "$@" & else taskset -c "$cpus" "$@" & fi
  PIDS+=($!)
}

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "port $1 did not open" >&2; exit 1
}

to_ms() { # "1.23ms" / "850.00us" / "1.02s" -> ms
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "%s", v }'
}

RESULTS="$WORK/results.tsv"
: > "$RESULTS"

run_mode() { # pinned|shared
  local mode=$1 server_cpus wrk_cpus
  if [ "$mode" = pinned ]; then server_cpus=1; wrk_cpus=0; else server_cpus=-; wrk_cpus=-; fi
  start "$server_cpus" nginx -c "$WORK/upstream/nginx.conf" -p "$WORK/upstream"
  start "$server_cpus" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
  start "$server_cpus" "$BIN" --config "$WORK/proxy.toml"
  wait_port $UPSTREAM_PORT; wait_port $NGINX_PORT; wait_port $VERT_PORT
  # Warm up each target (connection pools, caches).
  for port in $UPSTREAM_PORT $VERT_PORT $NGINX_PORT; do
    wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port$TARGET_PATH" >/dev/null
  done
  for round in $(seq 1 "$ROUNDS"); do
    for target in direct medmij-vert-proxy nginx; do
      case $target in
        direct) port=$UPSTREAM_PORT ;;
        medmij-vert-proxy) port=$VERT_PORT ;;
        nginx) port=$NGINX_PORT ;;
      esac
      local cmd=(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:$port$TARGET_PATH")
      local out
      if [ "$wrk_cpus" = "-" ]; then out=$("${cmd[@]}"); else out=$(taskset -c "$wrk_cpus" "${cmd[@]}"); fi
      local rps p50 p99 non2xx
      rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
      p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
      p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
      non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$round" "$target" "$rps" "$p50" "$p99" >> "$RESULTS"
      printf '%-7s round %s  %-18s %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms%s\n' \
        "$mode" "$round" "$target" "$rps" "$p50" "$p99" "${non2xx:+  (non-3xx: $non2xx)}"
    done
  done
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
  sleep 0.5
}

echo "medmij-vert-proxy benchmark ($SCENARIO): $ROUNDS rounds x ${SECONDS_PER_RUN}s, $CONNECTIONS connections, $(nproc) CPUs, $(nginx -v 2>&1)"
case $MODE in
  pinned|shared) run_mode "$MODE" ;;
  both) run_mode pinned; run_mode shared ;;
  *) echo "usage: $0 [pinned|shared|both] [rounds] [seconds] [connections] [pass|rule]" >&2; exit 2 ;;
esac

echo
echo "Medians over rounds. vs nginx: the median of the per-round ratios of requests/s to nginx in the"
echo "same mode (each round measures all three back to back, so slow drift of the machine cancels),"
echo "with the lowest and highest round in brackets."
awk -F'\t' '
  function median(list, count,   i, j, t) {
    for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++) if (list[j] + 0 < list[i] + 0) { t = list[i]; list[i] = list[j]; list[j] = t }
    return (count % 2) ? list[(count + 1) / 2] : (list[count / 2] + list[count / 2 + 1]) / 2
  }
  { modes[$1] = 1; rps[$1, $2, $3] = $4; p50[$1, $2, $3] = $5; p99[$1, $2, $3] = $6; if ($2 > rounds) rounds = $2 }
  END {
    printf "| mode | target | req/s | p50 ms | p99 ms | vs nginx [min, max] |\n|---|---|---:|---:|---:|---:|\n"
    split("pinned shared", order, " ")
    split("direct medmij-vert-proxy nginx", targets, " ")
    for (m = 1; m <= 2; m++) {
      mode = order[m]; if (!(mode in modes)) continue
      for (t = 1; t <= 3; t++) {
        target = targets[t]; lo = 1e9; hi = 0
        for (r = 1; r <= rounds; r++) {
          a[r] = rps[mode, r, target]; b[r] = p50[mode, r, target]; c[r] = p99[mode, r, target]
          q[r] = rps[mode, r, target] / rps[mode, r, "nginx"]
          if (q[r] < lo) lo = q[r]; if (q[r] > hi) hi = q[r]
        }
        printf "| %s | %s | %.0f | %.3f | %.3f | %.2fx [%.2f, %.2f] |\n", mode, target, median(a, rounds), median(b, rounds), median(c, rounds), median(q, rounds), lo, hi
      }
    }
  }' "$RESULTS"
