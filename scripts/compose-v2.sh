#!/usr/bin/env bash
# Installs Compose v2 from Debian trixie's `docker-compose` package as the Docker CLI plugin
# (`docker compose`), without changing the machine's apt sources. Tests use it for `config`
# checks and the benchmarks as the peer. Idempotent.
set -euo pipefail
PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose
if [ -x "$PLUGIN" ] && "$PLUGIN" version 2>/dev/null | grep -q 'v2\.'; then
  echo "compose v2 present: $("$PLUGIN" version)"
  exit 0
fi
work=$(mktemp -d /tmp/stackctl-compose.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial"
echo "deb http://deb.debian.org/debian trixie main" > "$work/sources.list"
opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$work/lists" -o "APT::Get::List-Cleanup=0")
apt-get "${opts[@]}" update -qq 2>/dev/null
(cd "$work" && apt-get "${opts[@]}" download -qq docker-compose 2>/dev/null)
dpkg-deb -x "$work"/docker-compose_*.deb "$work/root" 2>/dev/null
bin="$work/root/usr/libexec/docker/cli-plugins/docker-compose"
install -D -m 0755 "$bin" "$PLUGIN"
echo "installed $("$PLUGIN" version)"
