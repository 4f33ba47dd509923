#!/usr/bin/env bash
# What scraping costs (issue 19, point 5): postgate's requests/s with Prometheus scraping every
# target every 5 s ÷ the same with Prometheus stopped, in one run, one stack (PgBouncer), in
# alternating rounds (so a change in the machine's load hits both sides); medians reported.
# Target ≥ 0.97. The load is postgate's PK SELECT at 16 clients (wrk, as stack/postgate/bench.sh).
#
# Needs Docker, wrk and the release binaries beside each other:
#   cargo build --release --workspace && bash scripts/bench-metrics.sh [SECONDS]   (env ROUNDS=3)
set -euo pipefail

SECS="${1:-10}"
ROUNDS="${ROUNDS:-3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh" mbench
st init --pooler pgbouncer --project "$NAME" >/dev/null
for key in postgres pooler postgate grafana prometheus; do
  sed -i "/^\[ports\]/,/^\[/ s/^$key = .*/$key = $(free_port)/" "$DIR/stack.toml"
done
sed -i -e 's/^rate_per_token = .*/rate_per_token = 0/' -e 's/^scrape_interval = .*/scrape_interval = "5s"/' "$DIR/stack.toml"
echo "bench: building images, bringing postgate and the metrics services up (project $NAME)" >&2
st build postgres pgbouncer stackctl postgate prometheus postgres-exporter pgbouncer-exporter >/dev/null
st up postgate prometheus postgres-exporter pgbouncer-exporter --wait-timeout 240 >/dev/null

st tenant create bench >/dev/null
OWNER=$(st token create --tenant bench --permissions SELECT,INSERT,UPDATE,DELETE,DDL --name owner 2>/dev/null | grep -m1 '^pg_')
READER=$(st token create --tenant bench --permissions SELECT --name reader 2>/dev/null | grep -m1 '^pg_')
GATE_PORT=$(sed -n '/^\[ports\]/,/^\[/ s/^postgate = //p' "$DIR/stack.toml")
post() {
  curl -fsS -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
    --data "$(python3 -c 'import json,sys; print(json.dumps({"sql": sys.argv[1]}))' "$2")" \
    "http://127.0.0.1:$GATE_PORT/query" >/dev/null
}
post "$OWNER" "CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL)"
post "$OWNER" "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 10000) g"

LUA="$DIR/post.lua"
cat > "$LUA" <<EOF
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $READER"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local id = math.random(1, 10000)
  return wrk.format(nil, nil, nil, '{"sql":"SELECT id, body FROM items WHERE id = \$1","params":[' .. id .. ']}')
end
EOF
GATE_IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$NAME-postgate-1" | awk '{print $1}')
URL="http://$GATE_IP:8080/query"
PROM="$NAME-prometheus-1"
PROM_PORT=$(sed -n '/^\[ports\]/,/^\[/ s/^prometheus = //p' "$DIR/stack.toml")

# Prometheus must really scrape during the "with" rounds: every target up.
deadline=$((SECONDS + 60))
until curl -fsS "http://127.0.0.1:$PROM_PORT/api/v1/targets" | python3 -c '
import json, sys
t = json.load(sys.stdin)["data"]["activeTargets"]
sys.exit(0 if t and all(x["health"] == "up" for x in t) else 1)'; do
  ((SECONDS < deadline)) || { echo "bench: Prometheus targets not all up within 60 s" >&2; exit 1; }
  sleep 1
done

wrk -t2 -c16 -d3s -s "$LUA" "$URL" >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  docker start "$PROM" >/dev/null; sleep 6
  wrk -t2 -c16 -d"${SECS}s" -s "$LUA" "$URL" > "$DIR/with.$r"
  docker stop "$PROM" >/dev/null
  wrk -t2 -c16 -d"${SECS}s" -s "$LUA" "$URL" > "$DIR/without.$r"
done

python3 - "$DIR" "$ROUNDS" <<'EOF'
import re, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
rate = lambda f: float(re.search(r"Requests/sec:\s+([\d.]+)", open(f).read()).group(1))
rows = [(rate(f"{d}/with.{r}"), rate(f"{d}/without.{r}")) for r in range(1, rounds + 1)]
for i, (w, wo) in enumerate(rows, 1):
    print(f"round {i}: scraped every 5 s {w:7.0f} req/s   not scraped {wo:7.0f} req/s   ratio {w / wo:.3f}")
ratio = statistics.median(w / wo for w, wo in rows)
print(f"postgate req/s scraped every 5 s ÷ not scraped: {ratio:.3f} (median of {rounds} rounds; target ≥ 0.97)")
EOF
