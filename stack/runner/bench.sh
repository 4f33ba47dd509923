#!/usr/bin/env bash
# Queue benchmark against a real PostgreSQL 17 (our image), measured on this machine:
#  - throughput: N jobs enqueued with runner.enqueue(), C `runner queue work` no-op consumers;
#  - enqueue-to-start latency p50/p99: L jobs enqueued one per transaction every 2 ms while the
#    consumers wait on LISTEN/NOTIFY.
#  - the peer: PgQueuer (PyPI, installed into a venv under target/) draining N no-op jobs with
#    C worker processes against the same PostgreSQL, wall time from worker start to empty queue
#    (the runner's is measured the same way). SKIP_PEER=1 leaves it out.
# Usage: stack/runner/bench.sh   (env: N=50000 C=2 L=2000 PROFILE=dev|release)
set -euo pipefail
N=${N:-50000}; C=${C:-2}; L=${L:-2000}
BENCH_TAG=runner-bench
source "$(dirname "$0")/bench/common.sh"

t0=$(now)
psql_ "SELECT count(runner.enqueue('bench', jsonb_build_object('n', g))) FROM generate_series(1, $N) g" >/dev/null
t1=$(now)
w0=$(now)
for i in $(seq 1 "$C"); do
  "$BIN" queue work --queue bench --id "bench-$i" >/dev/null 2>&1 &
  PIDS+=($!)
done
deadline=$((SECONDS + 300))
until [ "$(psql_ "SELECT count(*) FROM runner.jobs WHERE queue = 'bench' AND state = 'done'")" = "$N" ]; do
  [ $SECONDS -lt $deadline ] || { echo "jobs not done in 300 s" >&2; exit 1; }
  sleep 0.05
done
w1=$(now)
read -r span <<<"$(psql_ "SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM runner.jobs WHERE queue = 'bench'")"

# Latency: consumers are idle now, woken by NOTIFY.
for i in $(seq 1 "$C"); do
  "$BIN" queue work --queue lat --id "lat-$i" >/dev/null 2>&1 &
  PIDS+=($!)
done
sleep 1  # let the consumers reach their LISTEN wait (not a readiness wait: a warm-up)
psql_ "DO \$\$ BEGIN FOR i IN 1..$L LOOP PERFORM runner.enqueue('lat', '{}'); COMMIT; PERFORM pg_sleep(0.002); END LOOP; END \$\$" >/dev/null
deadline=$((SECONDS + 60))
until [ "$(psql_ "SELECT count(*) FROM runner.jobs WHERE queue = 'lat' AND started_at IS NOT NULL")" = "$L" ]; do
  [ $SECONDS -lt $deadline ] || { echo "latency jobs not started in 60 s" >&2; exit 1; }
  sleep 0.1
done
read -r p50 p99 <<<"$(psql_ "SELECT round((1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at)))::numeric, 2),
  round((1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at)))::numeric, 2) FROM runner.jobs WHERE queue = 'lat'" | tr '|' ' ')"

peer="not measured (SKIP_PEER=1)"
if [ -z "${SKIP_PEER:-}" ]; then
  VENV=target/bench-venv
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q pgqueuer asyncpg >/dev/null
  export PEER_DSN="postgresql://postgres:bench@127.0.0.1:$PORT/postgres?sslmode=disable"
  "$VENV/bin/python" stack/runner/bench/pgqueuer_peer.py setup "$N"
  p0=$(now)
  PP=()
  for i in $(seq 1 "$C"); do "$VENV/bin/python" stack/runner/bench/pgqueuer_peer.py work >/dev/null 2>&1 & PP+=($!); done
  for p in "${PP[@]}"; do wait "$p"; done
  p1=$(now)
  left=$(psql_ "SELECT count(*) FROM pgqueuer")
  [ "$left" = 0 ] || { echo "PgQueuer left $left jobs" >&2; exit 1; }
  peer=$(awk -v n="$N" -v a="$p0" -v b="$p1" -v w0="$w0" -v w1="$w1" 'BEGIN { r = n / (w1 - w0); q = n / (b - a); printf "PgQueuer %s: %.0f jobs/s (wall); runner / PgQueuer = %.2fx", "'"$("$VENV/bin/pip" show pgqueuer | awk '/^Version/ {print $2}')"'", q, r / q }')
fi

awk -v n="$N" -v c="$C" -v e0="$t0" -v e1="$t1" -v w0="$w0" -v w1="$w1" -v span="$span" -v p50="$p50" -v p99="$p99" -v l="$L" -v prof="$PROFILE" 'BEGIN {
  printf "runner queue bench (%s build, %d consumers, batch 100, PostgreSQL 17 in Docker, %s)\n", prof, c, "this machine";
  printf "  enqueue %d jobs with runner.enqueue() in one statement: %.0f jobs/s\n", n, n / (e1 - e0);
  printf "  no-op consume: %d jobs in %.2f s wall = %.0f jobs/s (%.0f jobs/s first start to last finish in the database)\n", n, w1 - w0, n / (w1 - w0), n / span;
  printf "  enqueue-to-start latency over %d jobs (one per transaction, NOTIFY wake-up): p50 %s ms, p99 %s ms\n", l, p50, p99;
}'
echo "  peer: $peer"
