#!/usr/bin/env bash
# Runs postgate's cargo-fuzz targets (request decoder, statement check) for a fixed budget each,
# and fails on any crash. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# The always-on budget is the proptest run in tests/postgate/fuzz.rs (cargo test -p postgate).
#   bash stack/postgate/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
SECS="${1:-60}"
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 1; }
for target in request_decoder statement_check; do
  echo "fuzz: $target for $SECS s" >&2
  cargo +nightly fuzz run "$target" -- -max_total_time="$SECS" -rss_limit_mb=4096
done
echo "fuzz: no crash in ${SECS}s per target" >&2
