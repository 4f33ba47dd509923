#!/usr/bin/env bash
# Makes the Debian trixie base image that our Dockerfiles build on, on a machine with no
# container registry: debootstrap into a directory, then `docker import`. Idempotent: an
# existing image is kept. Users with a registry never need this (`docker pull debian:trixie-slim`).
set -euo pipefail
IMAGE="${BASE_IMAGE:-debian:trixie-slim}"
MIRROR="${DEBIAN_MIRROR:-}"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE already present"
  exit 0
fi
if [ -z "$MIRROR" ]; then
  # The mirror apt already uses on this machine (deb822 or one-line format).
  MIRROR=$(grep -hoE '^URIs: *http[^ ]*debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/^URIs: *//')
  [ -n "$MIRROR" ] || MIRROR=$(grep -hoE '^deb +http[^ ]*debian/? ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi
if ! command -v debootstrap >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
dir=$(mktemp -d /tmp/stackctl-rootfs.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "debootstrap trixie from $MIRROR into $dir"
debootstrap --variant=minbase trixie "$dir" "$MIRROR" >/tmp/stackctl-debootstrap.log 2>&1 || {
  tail -30 /tmp/stackctl-debootstrap.log; exit 1; }
# Keep the image small and apt usable inside builds.
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
tar -C "$dir" -c . | docker import - "$IMAGE" >/dev/null
echo "imported $IMAGE"
