#!/usr/bin/env bash
# HTTP benchmark on this machine: requests/s of a hello-world worker through `runner serve`
# vs a Node.js `http` hello world, same load generator for both (wrk, one thread, when installed;
# else bench/load.js), keep-alive, 32 connections, 5 s per phase, in alternating rounds (medians
# printed); plus idle RSS of a runner and the RSS
# added per deployed worker.
# Usage: stack/runner/bench-http.sh   (env: PROFILE=dev|release, WORKERS=20, LOADGEN=wrk|node, ROUNDS=3)
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
NPORT=$((20000 + RANDOM % 20000))
node -e "require('http').createServer((q, s) => s.end('hello')).listen($NPORT, '127.0.0.1')" &
NPID=$!; PIDS+=($NPID)
deadline=$((SECONDS + 10))
until curl -s "http://127.0.0.1:$NPORT/" >/dev/null; do
  [ $SECONDS -lt $deadline ] || { echo "node server did not start" >&2; exit 1; }
  sleep 0.1
done
# Alternating rounds, so that a change in the machine's load hits both sides; medians reported.
ROUNDS=${ROUNDS:-3}
rps_of() { sed 's/.*"rps":\([0-9]*\).*/\1/' <<<"$1"; }
R=(); N=(); RATIOS=()
for r in $(seq 1 "$ROUNDS"); do
  rj=$(load "http://$ADDR/" hello.workers.bench.local); nj=$(load "http://127.0.0.1:$NPORT/")
  R+=("$(rps_of "$rj")"); N+=("$(rps_of "$nj")")
  RATIOS+=("$(awk -v a="${R[-1]}" -v b="${N[-1]}" 'BEGIN {printf "%.2f", a / b}')")
  echo "  round $r: runner $rj   node $nj   ratio ${RATIOS[-1]}"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
r=$(median "${R[@]}"); n=$(median "${N[@]}"); ratio=$(median "${RATIOS[@]}")
awk -v r="$r" -v n="$n" -v ratio="$ratio" -v idle="$idle" -v b="$before" -v a="$after" -v w="$WORKERS" -v prof="$PROFILE" -v rounds="$ROUNDS" -v lg="$LOADGEN" 'BEGIN {
  printf "runner HTTP bench (%s build, 32 keep-alive connections, 5 s per phase, %d alternating rounds, load generator %s, this machine)\n", prof, rounds, lg;
  printf "  hello worker through runner: %d req/s (median)\n", r;
  printf "  Node.js http hello world:    %d req/s (median)\n", n;
  printf "  runner / node = %.2f (median of the rounds'"'"' ratios)\n", ratio;
  printf "  idle RSS of a runner: %.1f MiB; RSS added per deployed worker (after first request): %.2f MiB (%d workers)\n", idle / 1024, (a - b) / 1024 / w, w;
}'
