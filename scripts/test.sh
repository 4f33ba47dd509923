#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (`.ci/run` calls this file).
# Prepares what the tests need on a fresh machine, then runs every test against the real Docker
# Engine and real PostgreSQL. Nothing is pulled from a registry: the base image is made with
# debootstrap and our images are built by `stackctl build` inside the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v psql >/dev/null || need_apt+=(postgresql-client)
# pg_query (postgate's SQL check) runs bindgen, which needs libclang.
dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
# `stackctl publish` is tested against a real registry (distribution 2.8) with htpasswd users.
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
docker info >/dev/null 2>&1 || { echo "the tests need a running Docker Engine (docker info failed)" >&2; exit 1; }
bash scripts/base-image.sh
bash scripts/compose-v2.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Our images, built by our own `stackctl build` (skipped when their content hash is unchanged):
# the service crates' tests run PostgreSQL 17 from stackctl/postgres:17.
cargo build --locked
./target/debug/stackctl build postgres pgbouncer stackctl
cargo test --workspace --all-targets --locked
