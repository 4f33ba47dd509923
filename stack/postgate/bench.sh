#!/usr/bin/env bash
# postgate benchmark (issue 5, point 4). One run, one stack, one pooler, one database:
#   * postgate: POST /query with a primary-key SELECT (random id, bound as $1) at 16 concurrent
#     clients (wrk -c16, a Lua script for the POST), through PgBouncer (transaction mode);
#   * peer: pgbench with the same query and concurrency (-c16, extended protocol, random id),
#     run inside the stack's PostgreSQL container against the same PgBouncer: like a postgate
#     request, each transaction carries the query's text and its parameter. For reference it also
#     runs pgbench -M prepared (the text once per connection, then only the id) and prints that
#     ratio too;
# in alternating rounds, and prints postgate req/s ÷ pgbench tps (target ≥ 0.5, median of the
# rounds), postgate's p50/p99 latency (wrk),
# pgbench's average latency, and postgate's RSS (VmRSS at the middle of the run, VmHWM after it).
#
# Needs Docker, wrk and the release binaries beside each other:
#   cargo build --release --workspace && bash stack/postgate/bench.sh [SECONDS]   (env ROUNDS=3)
set -euo pipefail

SECS="${1:-10}"
ROUNDS="${ROUNDS:-3}"
CLIENTS=16
ROWS=10000
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=../../scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh" pgbench

PG_PORT=$(free_port); POOL_PORT=$(free_port); GATE_PORT=$(free_port); GRAFANA_PORT=$(free_port)

st init --pooler pgbouncer --project "$NAME" >/dev/null
sed -i -e "s/^postgres = 5432/postgres = $PG_PORT/" -e "s/^pooler = 6432/pooler = $POOL_PORT/" \
  -e "s/^postgate = 8080/postgate = $GATE_PORT/" -e "s/^grafana = 3000/grafana = $GRAFANA_PORT/" \
  -e "s/^rate_per_token = .*/rate_per_token = 0/" "$DIR/stack.toml"
echo "bench: building images and bringing postgate up (project $NAME)" >&2
st build postgres pgbouncer stackctl postgate >/dev/null
st up postgate --wait-timeout 240 >/dev/null

st tenant create bench >/dev/null
OWNER=$(st token create --tenant bench --permissions SELECT,INSERT,UPDATE,DELETE,DDL --name owner 2>/dev/null | grep -m1 '^pg_')
READER=$(st token create --tenant bench --permissions SELECT --name reader 2>/dev/null | grep -m1 '^pg_')

post() { # token sql -> body; fails on a non-200 answer
  curl -fsS -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
    --data "$(python3 -c 'import json,sys; print(json.dumps({"sql": sys.argv[1]}))' "$2")" \
    "http://127.0.0.1:$GATE_PORT/query"
}
post "$OWNER" "CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL)" >/dev/null
post "$OWNER" "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, $ROWS) g" >/dev/null
post "$READER" "SELECT id, body FROM items WHERE id = 42" | grep -q '"row_count":1'

# The peer reads the same table through the same PgBouncer as the pooled login `app`.
PG="$NAME-postgres-1"
docker exec "$PG" psql -U postgres -d app -XAtqc \
  "GRANT USAGE ON SCHEMA bench TO app; GRANT SELECT ON bench.items TO app;"
docker exec "$PG" sh -c "printf '\\\\set id random(1, $ROWS)\\nSELECT id, body FROM bench.items WHERE id = :id;\\n' > /tmp/pk.sql"
APP_PW=$(grep '^APP_DB_PASSWORD=' "$DIR/.env" | cut -d= -f2-)

LUA="$DIR/post.lua"
cat > "$LUA" <<EOF
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $READER"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local id = math.random(1, $ROWS)
  return wrk.format(nil, nil, nil, '{"sql":"SELECT id, body FROM items WHERE id = \$1","params":[' .. id .. ']}')
end
EOF

GATE_PID=$(docker inspect -f '{{.State.Pid}}' "$NAME-postgate-1")
# wrk reaches postgate over the stack's network, as pgbench reaches PgBouncer: the published
# loopback port goes through Docker's userland proxy, a hop (and CPU) the peer does not pay.
GATE_IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$NAME-postgate-1" | awk '{print $1}')
GATE_URL="http://$GATE_IP:8080/query"
rss_kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$GATE_PID/status"; }
IDLE_RSS=$(rss_kib VmRSS)

pgb() { docker exec -e PGPASSWORD="$APP_PW" "$PG" pgbench -h pooler -p 6432 -U app -d app -n \
  -c $CLIENTS -j 2 -f /tmp/pk.sql "$@"; }
echo "bench: warm-up (3 s each), then $ROUNDS rounds of postgate and pgbench, $SECS s each at $CLIENTS clients" >&2
wrk -t2 -c$CLIENTS -d3s -s "$LUA" "$GATE_URL" >/dev/null
pgb -M extended -T 3 >/dev/null
# Alternating phases, so that a change in the machine's load hits both sides; medians reported.
for r in $(seq 1 "$ROUNDS"); do
  ( sleep $((SECS / 2)); rss_kib VmRSS > "$DIR/rss_mid.$r" ) &
  wrk -t2 -c$CLIENTS -d"${SECS}s" --latency -s "$LUA" "$GATE_URL" > "$DIR/wrk.$r"
  wait
  pgb -M extended -T "$SECS" > "$DIR/pgbench.$r"
  pgb -M prepared -T "$SECS" > "$DIR/prepared.$r"
done
PEAK_RSS=$(rss_kib VmHWM)
MID_RSS=$(sort -n "$DIR"/rss_mid.* | tail -1)

python3 - "$DIR" "$ROUNDS" "$IDLE_RSS" "$MID_RSS" "$PEAK_RSS" <<'EOF'
import re, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
idle, mid, peak = (int(x) / 1024 for x in sys.argv[3:6])
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rows, problems = [], []
for r in range(1, rounds + 1):
    wrk, pgb = open(f"{d}/wrk.{r}").read(), open(f"{d}/pgbench.{r}").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", wrk, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", wrk, re.M).group(1))
    tps = float(re.search(r"tps = ([\d.]+)", pgb).group(1))
    lat = float(re.search(r"latency average = ([\d.]+) ms", pgb).group(1))
    prep = float(re.search(r"tps = ([\d.]+)", open(f"{d}/prepared.{r}").read()).group(1))
    for pat in (r"Non-2xx or 3xx responses:\s+\d+", r"Socket errors:.*"):
        m = re.search(pat, wrk)
        if m:
            problems.append(f"round {r}: {m.group(0)}")
    rows.append((rps, p50, p99, tps, lat, prep))
    print(f"round {r}: postgate {rps:7.0f} req/s (p50 {p50:.2f} ms, p99 {p99:.2f} ms)   pgbench {tps:7.0f} tps   ratio {rps / tps:.2f}   (pgbench -M prepared {prep:7.0f} tps, ratio {rps / prep:.2f})")
med = lambda i: statistics.median(x[i] for x in rows)
rps, p50, p99, tps, lat, prep = (med(i) for i in range(6))
ratio = statistics.median(x[0] / x[3] for x in rows)
ratio_prep = statistics.median(x[0] / x[5] for x in rows)
print(f"postgate  /query PK SELECT, 16 clients: {rps:9.0f} req/s   p50 {p50:.2f} ms   p99 {p99:.2f} ms  (medians of {rounds})")
print(f"pgbench   same query, 16 clients:       {tps:9.0f} tps     avg {lat:.2f} ms")
print(f"ratio postgate ÷ pgbench: {ratio:.2f}   (median of the rounds' ratios; target ≥ 0.5)")
print(f"for reference, pgbench -M prepared (prepares once, then sends only the id): {prep:.0f} tps, ratio {ratio_prep:.2f}")
print(f"postgate RSS: {idle:.1f} MiB idle, {mid:.1f} MiB under load, peak {peak:.1f} MiB")
if problems:
    print("WARNING: " + "; ".join(problems))
    sys.exit(1)
EOF
