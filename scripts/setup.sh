#!/usr/bin/env bash
# The README's set-up command: from a fresh clone on a machine with Docker, bring a stack up in
# DIR (default `mystack`). It installs what the build needs (as root through apt-get; otherwise it
# prints the exact install command and stops), builds stackctl and our service binaries in
# release mode, makes the Debian base image only when it can be neither found nor pulled, and
# runs `stackctl init` (kept if the stack exists: init never overwrites) and `stackctl up`.
# Idempotent: a second run rebuilds nothing that is unchanged and leaves a healthy stack as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-mystack}"

fail() {
  echo "setup: $*" >&2
  exit 1
}

command -v docker >/dev/null || fail "Docker is not installed (https://docs.docker.com/engine/install/)"
docker info >/dev/null 2>&1 || fail "the Docker Engine does not answer (docker info failed): start it, or add yourself to the docker group"
command -v cargo >/dev/null || fail "Rust is not installed: curl https://sh.rustup.rs -sSf | sh (then open a new shell)"

# Build prerequisites: a C compiler for the -sys crates, and libclang for pg_query's bindgen
# (postgate's SQL check).
need_apt=()
command -v cc >/dev/null || need_apt+=(gcc)
command -v make >/dev/null || need_apt+=(make)
if command -v dpkg >/dev/null; then
  dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
elif ! ldconfig -p 2>/dev/null | grep -q 'libclang'; then
  fail "libclang is missing (pg_query's build needs it): install your distribution's libclang development package"
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${need_apt[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    fail "missing build prerequisites; install them with: sudo apt-get install -y ${need_apt[*]}"
  fi
fi

cargo build --release --locked --workspace

# Our images build FROM debian:trixie-slim: use it if present, pull it where a registry answers,
# and make it with debootstrap where none does (scripts/base-image.sh needs root).
if ! docker image inspect debian:trixie-slim >/dev/null 2>&1; then
  if ! docker pull debian:trixie-slim >/dev/null 2>&1; then
    echo "setup: debian:trixie-slim cannot be pulled here; making it with debootstrap" >&2
    [ "$(id -u)" -eq 0 ] || fail "making the base image needs root: sudo bash scripts/base-image.sh"
    bash scripts/base-image.sh
  fi
fi

stackctl=./target/release/stackctl
if [ ! -f "$DIR/stack.toml" ]; then
  "$stackctl" --dir "$DIR" init --pooler pgbouncer
fi
"$stackctl" --dir "$DIR" up --without observability
echo "setup: the stack in $DIR is up; see: $stackctl --dir $DIR status" >&2
