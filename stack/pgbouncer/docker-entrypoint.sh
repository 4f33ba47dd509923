#!/bin/sh
# Copies the mounted config to a private directory owned by `postgres`, then runs as `postgres`
# (PgBouncer refuses to run as root).
set -eu
if [ "$(id -u)" = 0 ]; then
  install -d -o postgres -g postgres -m 0700 /run/pgbouncer
  for f in /etc/pgbouncer/*; do
    [ -f "$f" ] && install -o postgres -g postgres -m 0600 "$f" /run/pgbouncer/
  done
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
fi
exec "$@"
