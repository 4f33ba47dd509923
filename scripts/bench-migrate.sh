#!/usr/bin/env bash
# Benchmark of `stackctl migrate` against peers measured in the same run, on the same server
# (issue 4, point 5). Prints two ratios:
#   1. a no-op `stackctl migrate` ÷ a bare `psql -c 'select 1'`          (target ≤ 3)
#   2. applying 200 small migrations ÷ `for f in *.sql; do psql -f "$f"; done`  (target ≤ 1.0)
# Needs: docker, the stackctl/postgres:17 image (`stackctl build postgres`), psql, cargo.
# Usage: scripts/bench-migrate.sh [RUNS]   (RUNS: repetitions of the no-op timings, default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-15}"
IMAGE="${STACKCTL_POSTGRES_IMAGE:-stackctl/postgres:17}"

cargo build --release --quiet
BIN="$PWD/target/release/stackctl"

NAME="stackctl-bench-migrate-$$"
WORK="$(mktemp -d)"
cleanup() { docker rm -f -v "$NAME" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

PW="bench$$"
docker run -d --rm --name "$NAME" -e POSTGRES_PASSWORD="$PW" -e POSTGRES_DB=app -p 127.0.0.1::5432 "$IMAGE" >/dev/null
PORT="$(docker port "$NAME" 5432/tcp | head -1 | sed 's/.*://')"
export PGHOST=127.0.0.1 PGPORT="$PORT" PGUSER=postgres PGPASSWORD="$PW"
deadline=$((SECONDS + 90))
until psql -XqAt -d app -c 'select 1' >/dev/null 2>&1; do
  if ((SECONDS > deadline)); then echo "PostgreSQL did not come up within 90s" >&2; docker logs --tail 20 "$NAME" >&2; exit 1; fi
  sleep 0.1
done
psql -Xq -d app -c 'create database bench_stackctl' -c 'create database bench_psql'
url() { echo "postgres://postgres:$PW@127.0.0.1:$PORT/$1"; }

now() { date +%s%N; }
# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# ---- 1. no-op migrate vs psql -c 'select 1'
STACK="$WORK/stack"
mkdir -p "$STACK"
"$BIN" --dir "$STACK" init >/dev/null
"$BIN" --dir "$STACK" migrate --database-url "$(url bench_stackctl)" >/dev/null   # platform + roles
for _ in $(seq "$RUNS"); do
  t0=$(now); "$BIN" --dir "$STACK" migrate --database-url "$(url bench_stackctl)" >/dev/null; t1=$(now)
  echo $((t1 - t0)) >>"$WORK/noop"
  t0=$(now); psql -XqAt -d bench_psql -c 'select 1' >/dev/null; t1=$(now)
  echo $((t1 - t0)) >>"$WORK/select1"
done
noop=$(median <"$WORK/noop"); sel=$(median <"$WORK/select1")

# ---- 2. 200 small migrations vs a psql loop over the same files
mkdir -p "$STACK/db/migrations"
for i in $(seq 200); do
  printf 'create table t%d (id int primary key, v text not null);\ninsert into t%d values (1, %s);\ncreate index t%d_v on t%d (v);\n' \
    "$i" "$i" "'x'" "$i" "$i" >"$STACK/db/migrations/V${i}__t${i}.sql"
done
t0=$(now); "$BIN" --dir "$STACK" migrate --database-url "$(url bench_stackctl)" >/dev/null; t1=$(now)
many=$((t1 - t0))
t0=$(now)
(cd "$STACK/db/migrations" && for f in $(ls | sort -V); do psql -XqAt -v ON_ERROR_STOP=1 -d bench_psql -f "$f" >/dev/null; done)
t1=$(now)
loop=$((t1 - t0))

ms() { awk -v n="$1" 'BEGIN {printf "%.1f ms", n / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "PostgreSQL 17 ($IMAGE), $RUNS runs each, medians"
echo "no-op stackctl migrate:            $(ms "$noop")"
echo "psql -c 'select 1':                $(ms "$sel")"
echo "ratio no-op migrate / select 1:    $(ratio "$noop" "$sel")   (target <= 3)"
echo "200 migrations, stackctl migrate:  $(ms "$many")"
echo "200 migrations, psql -f loop:      $(ms "$loop")"
echo "ratio migrate / psql loop:         $(ratio "$many" "$loop")   (target <= 1.0)"
