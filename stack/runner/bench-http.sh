#!/usr/bin/env bash
# HTTP benchmark on this machine: requests/s of a hello-world worker through `runner serve`
# vs a Node.js `http` hello world, same load generator for both (wrk, one thread, when installed;
# else bench/load.js), keep-alive, 32 connections, 5 s; plus idle RSS of a runner and the RSS
# added per deployed worker.
# Usage: stack/runner/bench-http.sh   (env: PROFILE=dev|release, WORKERS=20, LOADGEN=wrk|node)
set -euo pipefail
WORKERS=${WORKERS:-20}
command -v node >/dev/null || { echo "bench-http.sh needs node (apt-get install nodejs)" >&2; exit 1; }
BENCH_TAG=runner-hbench
LOG=$(mktemp)
bench_cleanup() { rm -f "$LOG"; }
source "$(dirname "$0")/bench/common.sh"
RUNNER_LISTEN=127.0.0.1:0 RUNNER_WORKERS_DOMAIN=workers.bench.local "$BIN" serve --id hbench >"$LOG" 2>&1 &
RPID=$!; PIDS+=($RPID)
deadline=$((SECONDS + 30))
until grep -q '"runner serving"' "$LOG"; do
  [ $SECONDS -lt $deadline ] || { echo "runner did not start" >&2; cat "$LOG" >&2; exit 1; }
  sleep 0.1
done
ADDR=$(grep '"runner serving"' "$LOG" | sed 's/.*"addr":"\([^"]*\)".*/\1/')
sleep 1  # settle: idle RSS is a reading after start-up, not a readiness wait
idle=$(rss "$RPID")

psql_ "SELECT runner.deploy('hello', 'export default { fetch() { return new Response(\"hello\"); } };')" >/dev/null
for i in $(seq 1 "$WORKERS"); do
  psql_ "SELECT runner.deploy('w$i', 'const state = { n: $i }; export default { fetch() { return new Response(String(state.n)); } };')" >/dev/null
done
deadline=$((SECONDS + 30))
until [ "$(curl -s -H "host: w$WORKERS.workers.bench.local" "http://$ADDR/")" = "$WORKERS" ]; do
  [ $SECONDS -lt $deadline ] || { echo "workers not served" >&2; exit 1; }
  sleep 0.1
done
before=$(rss "$RPID")
# Instantiate every worker (engines start on first use).
for i in $(seq 1 "$WORKERS"); do curl -s -o /dev/null -H "host: w$i.workers.bench.local" "http://$ADDR/"; done
after=$(rss "$RPID")

LOADGEN=${LOADGEN:-$(command -v wrk >/dev/null && echo wrk || echo node)}
# load URL [HOST] -> {"rps":N,...}
load() {
  if [ "$LOADGEN" = wrk ]; then
    local out; out=$(wrk -t1 -c32 -d5s ${2:+-H "Host: $2"} "$1")
    local rps; rps=$(awk '/^Requests\/sec/ {printf "%d", $2}' <<<"$out")
    local bad; bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    echo "{\"rps\":$rps,\"non2xx\":${bad:-0},\"loadgen\":\"wrk -t1 -c32\"}"
  else
    node stack/runner/bench/load.js "$1" 32 5 ${2:+"$2"}
  fi
}
runner_rps=$(load "http://$ADDR/" hello.workers.bench.local)
NPORT=$((20000 + RANDOM % 20000))
node -e "require('http').createServer((q, s) => s.end('hello')).listen($NPORT, '127.0.0.1')" &
NPID=$!; PIDS+=($NPID)
deadline=$((SECONDS + 10))
until curl -s "http://127.0.0.1:$NPORT/" >/dev/null; do
  [ $SECONDS -lt $deadline ] || { echo "node server did not start" >&2; exit 1; }
  sleep 0.1
done
node_rps=$(load "http://127.0.0.1:$NPORT/")

r=$(echo "$runner_rps" | sed 's/.*"rps":\([0-9]*\).*/\1/'); n=$(echo "$node_rps" | sed 's/.*"rps":\([0-9]*\).*/\1/')
awk -v r="$r" -v n="$n" -v idle="$idle" -v b="$before" -v a="$after" -v w="$WORKERS" -v prof="$PROFILE" -v rj="$runner_rps" -v nj="$node_rps" 'BEGIN {
  printf "runner HTTP bench (%s build, 32 keep-alive connections, 5 s, this machine)\n", prof;
  printf "  hello worker through runner: %d req/s %s\n", r, rj;
  printf "  Node.js http hello world:    %d req/s %s\n", n, nj;
  printf "  runner / node = %.2f\n", r / n;
  printf "  idle RSS of a runner: %.1f MiB; RSS added per deployed worker (after first request): %.2f MiB (%d workers)\n", idle / 1024, (a - b) / 1024 / w, w;
}'
