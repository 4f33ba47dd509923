# Shared set-up of bench.sh and bench-http.sh (sourced, not run): build the runner, start
# PostgreSQL 17 (our image) in Docker on a loopback port, wait for it with a deadline, apply the
# runner schema. Defines BIN, NAME, PORT, RUNNER_DATABASE_URL, PIDS, psql_, now, rss; the EXIT
# trap kills PIDS and removes the container (and runs bench_cleanup if the caller defines it).
# Needs: PROFILE (dev|release), BENCH_TAG (container name prefix).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
PROFILE=${PROFILE:-dev}
command -v docker >/dev/null || { echo "$0 needs Docker" >&2; exit 1; }
if [ "$PROFILE" = release ]; then cargo build -q --release -p runner; BIN=target/release/runner
else cargo build -q -p runner; BIN=target/debug/runner; fi
NAME=${BENCH_TAG:-runner-bench}-$$
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  if declare -F bench_cleanup >/dev/null; then bench_cleanup; fi
}
trap cleanup EXIT
docker run -d --rm --name "$NAME" -p 127.0.0.1::5432 -e POSTGRES_PASSWORD=bench stackctl/postgres:17 >/dev/null
PORT=$(docker port "$NAME" 5432/tcp | head -1 | sed 's/.*://')
export RUNNER_DATABASE_URL="host=127.0.0.1 port=$PORT user=postgres password=bench dbname=postgres"
psql_() { docker exec -e PGPASSWORD=bench "$NAME" psql -U postgres -h 127.0.0.1 -qtAX -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
deadline=$((SECONDS + 90))
until psql_ "SELECT 1" >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || { echo "PostgreSQL not ready in 90 s" >&2; exit 1; }
  sleep 0.2
done
"$BIN" migrate >/dev/null
