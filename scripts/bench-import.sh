#!/usr/bin/env bash
# Benchmark of `stackctl import-supabase` against a bare `pg_dump -Fc` + `pg_restore -j2` of the
# same data, measured in the same run on the same servers (issue 7, point 4; target ≤ 1.3).
#
# The source is the Supabase-like test project (tests/integration/supabase_source.sql) plus
# generated rows until the database holds at least SIZE_MB (default 200) megabytes. Each run
# restores into a fresh database: stackctl's after `stackctl migrate` (its role bootstrap), the
# peer's after creating the Supabase roles the archive names (so the bare restore succeeds too).
# Both sides run pg_dump / pg_restore from the same image, with host networking. The peer writes
# the archive to a file (`pg_restore -j` cannot read a pipe). Not part of CI.
#
# Needs: docker, the stackctl/postgres:17 image (`stackctl build postgres`), psql, cargo.
# Usage: scripts/bench-import.sh [RUNS] [SIZE_MB]   (RUNS default 2: alternating peer / stackctl)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-2}"
SIZE_MB="${2:-200}"
IMAGE="${STACKCTL_POSTGRES_IMAGE:-stackctl/postgres:17}"

if [ -z "${STACKCTL_BIN:-}" ]; then
  cargo build --release --quiet
  STACKCTL_BIN="$PWD/target/release/stackctl"
fi
BIN="$STACKCTL_BIN"

TAG="stackctl-bench-import-$$"
WORK="$(mktemp -d)"
cleanup() {
  docker rm -f -v "$TAG-src" "$TAG-dst" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PW="bench$$"
start() {
  docker run -d --rm --name "$1" -e POSTGRES_PASSWORD="$PW" -e POSTGRES_DB=app -p 127.0.0.1::5432 "$IMAGE" >/dev/null
}
port() { docker port "$1" 5432/tcp | head -1 | sed 's/.*://'; }
wait_ready() {
  local deadline=$((SECONDS + 90))
  until PGPASSWORD="$PW" psql -XqAt -h 127.0.0.1 -p "$1" -U postgres -d app -c 'select 1' >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then echo "PostgreSQL on port $1 did not come up within 90s" >&2; exit 1; fi
    sleep 0.1
  done
}
start "$TAG-src"
start "$TAG-dst"
SRC_PORT="$(port "$TAG-src")"
DST_PORT="$(port "$TAG-dst")"
wait_ready "$SRC_PORT"
wait_ready "$DST_PORT"
src() { PGPASSWORD="$PW" psql -XqAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$SRC_PORT" -U postgres -d app "$@"; }
dst() { PGPASSWORD="$PW" psql -XqAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$DST_PORT" -U postgres "$@"; }

echo "generating at least ${SIZE_MB} MB in the source..."
src -f tests/integration/supabase_source.sql 2>/dev/null
src <<'SQL'
CREATE TABLE app.events (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES auth.users (id),
    kind text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_user_idx ON app.events (user_id, created_at);
ALTER TABLE app.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY "own events" ON app.events FOR SELECT TO authenticated USING (auth.uid() = user_id);
SQL
while :; do
  size="$(src -c "select pg_database_size(current_database()) / 1000000")"
  ((size >= SIZE_MB)) && break
  src -c "INSERT INTO app.events (user_id, kind, payload)
          SELECT md5('user' || (g % 2000 + 1))::uuid, (ARRAY['click','view','buy'])[g % 3 + 1],
                 jsonb_build_object('n', g, 'note', repeat(md5(g::text), 2))
            FROM generate_series(1, 250000) g"
done
src -c "VACUUM ANALYZE"
echo "source: $(src -c "select pg_size_pretty(pg_database_size(current_database()))"), $(src -c 'select count(*) from app.events') events"

SRC_URL="postgres://postgres:$PW@127.0.0.1:$SRC_PORT/app"
STACK="$WORK/stack"
mkdir -p "$STACK" "$WORK/peer"
"$BIN" --dir "$STACK" init >/dev/null
ROLES="$(grep -E '^(CREATE ROLE|GRANT anon)' tests/integration/supabase_source.sql)"
dst -d app -c "$ROLES" >/dev/null

now() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1e9 }'; }
peer_total=0
ours_total=0
ratios=""
for i in $(seq 1 "$RUNS"); do
  # The peer: bare pg_dump -Fc, then pg_restore -j2, from the same image, same networking.
  dst -d app -c "CREATE DATABASE peer_$i" >/dev/null
  rm -f "$WORK/peer/peer.dump"
  t0=$(now)
  docker run --rm --network host -u "$(id -u):$(id -g)" -v "$WORK/peer:/w" -e PGPASSWORD="$PW" "$IMAGE" \
    pg_dump -Fc -h 127.0.0.1 -p "$SRC_PORT" -U postgres -d app -f /w/peer.dump
  docker run --rm --network host -u "$(id -u):$(id -g)" -v "$WORK/peer:/w" -e PGPASSWORD="$PW" "$IMAGE" \
    pg_restore -j2 -h 127.0.0.1 -p "$DST_PORT" -U postgres -d "peer_$i" /w/peer.dump
  t1=$(now)
  peer=$((t1 - t0))

  # stackctl: the whole command, preflight and verification included.
  dst -d app -c "CREATE DATABASE ours_$i" >/dev/null
  DST_URL="postgres://postgres:$PW@127.0.0.1:$DST_PORT/ours_$i"
  "$BIN" --dir "$STACK" migrate --database-url "$DST_URL" >/dev/null
  t0=$(now)
  "$BIN" --dir "$STACK" import-supabase --from "$SRC_URL" --database-url "$DST_URL" --jobs 2 >"$WORK/ours.out" 2>"$WORK/ours.err" \
    || { cat "$WORK/ours.out" "$WORK/ours.err" >&2; exit 1; }
  t1=$(now)
  ours=$((t1 - t0))
  peer_total=$((peer_total + peer))
  ours_total=$((ours_total + ours))
  ratios="$ratios $(awk -v o="$ours" -v p="$peer" 'BEGIN { printf "%.2f", o / p }')"
  echo "run $i: pg_dump -Fc + pg_restore -j2 $(secs $peer) s; stackctl import-supabase $(secs $ours) s; ratio $(awk -v o="$ours" -v p="$peer" 'BEGIN { printf "%.2f", o / p }') ($(tail -1 "$WORK/ours.out"))"
done
grep -E '^import: (dumped|restored)' "$WORK/ours.err" | sed 's/^/  last stackctl run: /'
awk -v o="$ours_total" -v p="$peer_total" -v n="$RUNS" 'BEGIN {
  printf "import-supabase ÷ pg_dump -Fc + pg_restore -j2: %.2f s ÷ %.2f s = %.2f (target ≤ 1.3; mean of %d runs)\n", o / n / 1e9, p / n / 1e9, o / p, n }'
echo "median of the per-run ratios: $(echo $ratios | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')"
