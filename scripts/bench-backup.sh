#!/usr/bin/env bash
# Benchmark of backups and restores (issue 17, point 7), against peers measured in the same run on
# the same machine, on a pgbench database of SCALE (default 70: about 1.05 GB). Prints:
#   1. `stackctl backup --type full` ÷ `pg_basebackup -Ft -z` of the same database   (target ≤ 1.0)
#   2. `stackctl restore --latest --yes` (stop, set aside, restore, replay, start, healthy)
#      ÷ restoring that base backup (untar, start PostgreSQL until it accepts queries) (target ≤ 1.0)
#   3. repository size ÷ database size
#   4. pgbench writes/s with archiving on (the stack) ÷ off (a plain server of the same image,
#      same scale, same settings otherwise)                                           (target ≥ 0.9)
# Needs: docker, our images (`stackctl build postgres pgbouncer stackctl`), cargo.
# Usage: scripts/bench-backup.sh [SCALE]
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-70}"
SECS="${BENCH_PGBENCH_SECONDS:-30}"

cargo build --release --quiet
BIN="$PWD/target/release/stackctl"
WORK="$(mktemp -d)"
STACK="$WORK/stack"
PLAIN="stackctl-bench-backup-plain-$$"
cleanup() {
  "$BIN" --dir "$STACK" down --volumes --include-backups --yes >/dev/null 2>&1 || true
  docker rm -f -v "$PLAIN" >/dev/null 2>&1 || true
  docker volume rm "$PLAIN" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s%N; }
secs() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

mkdir -p "$STACK"
"$BIN" --dir "$STACK" init --pooler pgbouncer --project "benchbk$$" >/dev/null
# Free loopback ports for this run.
for key in postgres pooler postgate grafana; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  sed -i "/^\[ports\]/,/^\[/ s/^$key = .*/$key = $port/" "$STACK/stack.toml"
done
"$BIN" --dir "$STACK" up --without observability --without apps --without backup >/dev/null
PG="$(docker ps -q --filter "label=com.docker.compose.project=benchbk$$" --filter label=com.docker.compose.service=postgres)"
pgx() { docker exec -u postgres "$PG" "$@"; }

echo "== pgbench -i -s $SCALE"
pgx pgbench -i -q -s "$SCALE" app >/dev/null 2>&1
db_bytes=$(pgx psql -XAtq -d app -c "select pg_database_size('app')")
echo "database: $((db_bytes / 1024 / 1024)) MiB"

echo "== 1. full backup vs pg_basebackup -Ft -z"
t0=$(now); "$BIN" --dir "$STACK" backup --type full >/dev/null; t1=$(now); ours=$((t1 - t0))
t0=$(now); pgx pg_basebackup -D /tmp/bench-base -Ft -z -X fetch -U postgres; t1=$(now); peer=$((t1 - t0))
echo "backup: stackctl $(secs $ours)s, pg_basebackup $(secs $peer)s, ratio $(ratio $ours $peer) (target <= 1.0)"

echo "== 3. repository size vs database size"
repo_bytes=$("$BIN" --dir "$STACK" backup list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sets"][-1]["repository_bytes"])')
echo "repository $((repo_bytes / 1024 / 1024)) MiB / database $((db_bytes / 1024 / 1024)) MiB = $(ratio "$repo_bytes" "$db_bytes")"

echo "== 2. restore --latest vs restoring the base backup"
# The peer first, while the server runs: untar into a scratch directory, start, wait for queries.
t0=$(now)
pgx bash -c 'set -e; d=/tmp/bench-restore; rm -rf $d; mkdir -m 700 $d; tar xzf /tmp/bench-base/base.tar.gz -C $d
  pg_ctl -D $d -l /tmp/bench-restore.log -w -o "-p 5499 -c archive_mode=off -c listen_addresses= -c shared_preload_libraries=" start >/dev/null
  until psql -XAtq -p 5499 -d app -c "select 1" >/dev/null 2>&1; do sleep 0.1; done
  pg_ctl -D $d -m fast -w stop >/dev/null; rm -rf $d /tmp/bench-base'
t1=$(now); peer=$((t1 - t0))
t0=$(now); "$BIN" --dir "$STACK" restore --latest --yes >/dev/null 2>&1; t1=$(now); ours=$((t1 - t0))
echo "restore: stackctl $(secs $ours)s, base backup $(secs $peer)s, ratio $(ratio $ours $peer) (target <= 1.0)"

echo "== 4. pgbench writes with archiving on vs off"
PG="$(docker ps -q --filter "label=com.docker.compose.project=benchbk$$" --filter label=com.docker.compose.service=postgres)"
on=$(pgx pgbench -n -c 4 -j 2 -T "$SECS" app 2>/dev/null | awk '/^tps/ {print $3; exit}')
# Its data on a named volume too, as the stack's is (a container's own layer writes slower).
docker run -d --name "$PLAIN" -v "$PLAIN:/var/lib/postgresql/data" -e POSTGRES_PASSWORD=bench -e POSTGRES_DB=app \
  "$(docker inspect -f '{{.Config.Image}}' "$PG")" >/dev/null
until docker exec -u postgres "$PLAIN" psql -XAtq -d app -c 'select 1' >/dev/null 2>&1; do sleep 0.5; done
docker exec -u postgres "$PLAIN" pgbench -i -q -s "$SCALE" app >/dev/null 2>&1
off=$(docker exec -u postgres "$PLAIN" pgbench -n -c 4 -j 2 -T "$SECS" app 2>/dev/null | awk '/^tps/ {print $3; exit}')
echo "pgbench: archiving on $on tps, off $off tps, ratio $(ratio "$on" "$off") (target >= 0.9)"
