# Sourced by the benchmarks that drive a stack with postgate (stack/postgate/bench.sh,
# scripts/bench-metrics.sh): checks the release binaries and wrk, makes a stack directory with a
# unique project name that is taken down (volumes and backups too) on exit, and defines
# `free_port` and `st` (stackctl in that directory).
# Usage: ROOT=<repo> source scripts/bench-lib.sh PREFIX   -> BIN, DIR, NAME
BIN="${STACKCTL:-$ROOT/target/release/stackctl}"
[ -x "$BIN" ] || { echo "bench: $BIN missing: cargo build --release --workspace" >&2; exit 1; }
[ -x "$(dirname "$BIN")/postgate" ] || { echo "bench: postgate binary missing beside stackctl: cargo build --release --workspace" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench: wrk missing: apt-get install -y wrk" >&2; exit 1; }

DIR="$(mktemp -d "/tmp/$1-bench.XXXXXX")"
NAME="$1$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
cleanup() {
  "$BIN" --dir "$DIR" down --volumes --include-backups --yes >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
st() { "$BIN" --dir "$DIR" "$@"; }
