#!/usr/bin/env bash
# HTTP benchmark on this machine: requests/s of a hello-world worker through `runner serve`
# vs a Node.js `http` hello world, same load generator (bench/load.js, keep-alive, 32
# connections, 5 s); plus idle RSS of a runner and the RSS added per deployed worker.
# Usage: stack/runner/bench-http.sh   (env: PROFILE=dev|release, WORKERS=20)
set -euo pipefail
cd "$(dirname "$0")/../.."
PROFILE=${PROFILE:-dev}; WORKERS=${WORKERS:-20}
command -v docker >/dev/null || { echo "bench-http.sh needs Docker" >&2; exit 1; }
command -v node >/dev/null || { echo "bench-http.sh needs node (apt-get install nodejs)" >&2; exit 1; }
if [ "$PROFILE" = release ]; then cargo build -q --release -p runner; BIN=target/release/runner
else cargo build -q -p runner; BIN=target/debug/runner; fi
NAME=runner-hbench-$$
PIDS=()
LOG=$(mktemp)
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; docker rm -f "$NAME" >/dev/null 2>&1 || true; rm -f "$LOG"; }
trap cleanup EXIT
docker run -d --rm --name "$NAME" -p 127.0.0.1::5432 -e POSTGRES_PASSWORD=bench stackctl/postgres:17 >/dev/null
PORT=$(docker port "$NAME" 5432/tcp | head -1 | sed 's/.*://')
export RUNNER_DATABASE_URL="host=127.0.0.1 port=$PORT user=postgres password=bench dbname=postgres"
psql_() { docker exec -e PGPASSWORD=bench "$NAME" psql -U postgres -h 127.0.0.1 -qtAX -v ON_ERROR_STOP=1 -c "$1"; }
deadline=$((SECONDS + 90))
until psql_ "SELECT 1" >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || { echo "PostgreSQL not ready in 90 s" >&2; exit 1; }
  sleep 0.2
done
"$BIN" migrate >/dev/null
RUNNER_LISTEN=127.0.0.1:0 RUNNER_WORKERS_DOMAIN=bench.local "$BIN" serve --id hbench >"$LOG" 2>&1 &
RPID=$!; PIDS+=($RPID)
deadline=$((SECONDS + 30))
until grep -q '"runner serving"' "$LOG"; do
  [ $SECONDS -lt $deadline ] || { echo "runner did not start" >&2; cat "$LOG" >&2; exit 1; }
  sleep 0.1
done
ADDR=$(grep '"runner serving"' "$LOG" | sed 's/.*"addr":"\([^"]*\)".*/\1/')
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
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

runner_rps=$(node stack/runner/bench/load.js "http://$ADDR/" 32 5 hello.workers.bench.local)
NPORT=$((20000 + RANDOM % 20000))
node -e "require('http').createServer((q, s) => s.end('hello')).listen($NPORT, '127.0.0.1')" &
NPID=$!; PIDS+=($NPID)
deadline=$((SECONDS + 10))
until curl -s "http://127.0.0.1:$NPORT/" >/dev/null; do
  [ $SECONDS -lt $deadline ] || { echo "node server did not start" >&2; exit 1; }
  sleep 0.1
done
node_rps=$(node stack/runner/bench/load.js "http://127.0.0.1:$NPORT/" 32 5)

r=$(echo "$runner_rps" | sed 's/.*"rps":\([0-9]*\).*/\1/'); n=$(echo "$node_rps" | sed 's/.*"rps":\([0-9]*\).*/\1/')
awk -v r="$r" -v n="$n" -v idle="$idle" -v b="$before" -v a="$after" -v w="$WORKERS" -v prof="$PROFILE" -v rj="$runner_rps" -v nj="$node_rps" 'BEGIN {
  printf "runner HTTP bench (%s build, 32 keep-alive connections, 5 s, this machine)\n", prof;
  printf "  hello worker through runner: %d req/s %s\n", r, rj;
  printf "  Node.js http hello world:    %d req/s %s\n", n, nj;
  printf "  runner / node = %.2f\n", r / n;
  printf "  idle RSS of a runner: %.1f MiB; RSS added per deployed worker (after first request): %.2f MiB (%d workers)\n", idle / 1024, (a - b) / 1024 / w, w;
}'
