#!/usr/bin/env bash
# Benchmark (not a test): stackctl's engine against Docker Compose v2, measured in one run on the
# same stack (init --pooler pgbouncer, core group: postgres, migrate, pgbouncer) on this machine.
#   no-op ratio = median no-op `stackctl up` / median no-op `docker compose up -d --wait`   (target <= 0.25)
#   cold ratio  = median cold `stackctl up`  / median cold `docker compose up -d --wait`   (target <= 0.8)
# "cold" = no containers, no volumes (images present) until every service is healthy / completed.
# Each side runs under its own project name, one after the other (they share the host ports).
# Compose bind-mounts `configs:` files, so the bench makes the config files world-readable in its
# throwaway stack directory (stackctl uploads them with their declared modes instead).
# Usage: scripts/bench-engine.sh [RUNS]   (needs: cargo, docker, scripts/compose-v2.sh, the base image)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
COLD_RUNS="${COLD_RUNS:-3}"
cargo build --release -q   # release: what users run (the debug build hashes SCRAM verifiers slowly)
BIN="$PWD/target/release/stackctl"
docker compose version >/dev/null 2>&1 || bash scripts/compose-v2.sh >/dev/null

dir=$(mktemp -d /tmp/stackctl-bench.XXXXXX)
ours="benchs$$"
theirs="benchc$$"
cleanup() {
  "$BIN" --dir "$dir" down --volumes >/dev/null 2>&1 || true
  docker compose -p "$theirs" -f "$dir/docker-compose.yml" down --volumes >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$BIN" --dir "$dir" init --pooler pgbouncer --project "$ours" >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sed -i "s/^postgres = 5432/postgres = $(port)/; s/^pooler = 6432/pooler = $(port)/" "$dir/stack.toml"
"$BIN" --dir "$dir" build postgres pgbouncer stackctl >/dev/null
"$BIN" --dir "$dir" render --target local >/dev/null
chmod a+r "$dir"/pgbouncer/* "$dir"/certs/server.* 2>/dev/null || true

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_it() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@" >&2 || true; exit 1; }; t1=$(now); echo "$t1 - $t0" | bc -l; }

up_ours() { "$BIN" --dir "$dir" up --without observability --without apps; }
up_theirs() { (cd "$dir" && docker compose -p "$theirs" -f docker-compose.yml up -d --wait postgres migrate pgbouncer); }
down_ours() { "$BIN" --dir "$dir" down --volumes >/dev/null 2>&1; }
down_theirs() { docker compose -p "$theirs" -f "$dir/docker-compose.yml" down --volumes >/dev/null 2>&1; }

cold_ours=(); noop_ours=(); cold_theirs=(); noop_theirs=()
for _ in $(seq "$COLD_RUNS"); do down_ours; cold_ours+=("$(time_it up_ours)"); done
for _ in $(seq "$RUNS"); do noop_ours+=("$(time_it up_ours)"); done
down_ours
for _ in $(seq "$COLD_RUNS"); do down_theirs; cold_theirs+=("$(time_it up_theirs)"); done
for _ in $(seq "$RUNS"); do noop_theirs+=("$(time_it up_theirs)"); done
down_theirs

m() { printf '%s\n' "$@" | median; }
co=$(m "${cold_ours[@]}"); ct=$(m "${cold_theirs[@]}"); no=$(m "${noop_ours[@]}"); nt=$(m "${noop_theirs[@]}")
printf 'peer: %s\n' "$(docker compose version)"
printf 'cold up until healthy: stackctl %.2fs, compose %.2fs, ratio %.2f (target <= 0.8)\n' "$co" "$ct" "$(echo "$co / $ct" | bc -l)"
printf 'no-op up:              stackctl %.2fs, compose %.2fs, ratio %.2f (target <= 0.25)\n' "$no" "$nt" "$(echo "$no / $nt" | bc -l)"
