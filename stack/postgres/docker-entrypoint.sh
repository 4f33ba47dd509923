#!/usr/bin/env bash
# Entrypoint of stackctl's PostgreSQL image, modelled on the official image's:
# first start initialises $PGDATA from POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB and runs
# /docker-entrypoint-initdb.d/*.{sh,sql,sql.gz}; every start runs the server as `postgres`.
set -Eeuo pipefail

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
TLS_SRC=/etc/postgresql/tls
TLS_DIR=/var/lib/postgresql/tls
# Preloaded libraries: pg_cron, pgaudit, and pg_stat_statements for the slowest-statements panel.
PRELOAD=pg_cron,pgaudit,pg_stat_statements

log() { echo "entrypoint: $*" >&2; }

# VAR from VAR, or else from the file VAR_FILE names (a Docker Swarm secret under /run/secrets/),
# as the official image does: the value reaches the server's own environment, never the
# container's configuration (`docker inspect`).
file_env() {
  local var="$1" file_var="${1}_FILE"
  if [ -z "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    if [ ! -r "${!file_var}" ]; then
      log "error: $file_var names ${!file_var}, which cannot be read; mount the secret there or set $var"
      exit 1
    fi
    export "$var"="$(< "${!file_var}")"
  fi
  unset "$file_var"
}
file_env POSTGRES_PASSWORD
file_env PGBACKREST_REPO1_CIPHER_PASS

if [ "${1:-}" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  [ "$(stat -c %U "$PGDATA")" = postgres ] || chown -R postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  # pgBackRest's repository (a mounted volume) and async spool belong to the server's user.
  for d in /var/lib/pgbackrest /var/spool/pgbackrest; do
    if [ -d "$d" ] && [ "$(stat -c %U "$d")" != postgres ]; then chown -R postgres:postgres "$d"; fi
  done
  # PostgreSQL wants its key owned by itself and private: copy the mounted material.
  if [ -f "$TLS_SRC/server.crt" ] && [ -f "$TLS_SRC/server.key" ]; then
    install -d -o postgres -g postgres -m 0700 "$TLS_DIR"
    install -o postgres -g postgres -m 0644 "$TLS_SRC/server.crt" "$TLS_DIR/server.crt"
    install -o postgres -g postgres -m 0600 "$TLS_SRC/server.key" "$TLS_DIR/server.key"
  fi
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "${1:-}" != postgres ]; then
  exec "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    log "error: the database is uninitialised and POSTGRES_PASSWORD is not set"
    log "set POSTGRES_PASSWORD (stackctl puts it in .env) and start again"
    exit 1
  fi
  log "initialising $PGDATA for user $POSTGRES_USER, database $POSTGRES_DB"
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    -D "$PGDATA" >/dev/null
  {
    echo
    echo "# added by stackctl's entrypoint"
    echo "listen_addresses = '*'"
    echo "password_encryption = scram-sha-256"
    echo "shared_preload_libraries = '$PRELOAD'"
    echo "cron.database_name = '$POSTGRES_DB'"
    echo "pgaudit.log = 'role, ddl'"
    echo "log_line_prefix = '%m [%p] %q%u@%d '"
  } >> "$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"

  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --set db="$POSTGRES_DB" -q <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) log "running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
      *.sql) log "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
      *) [ -e "$f" ] && log "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  log "initialised; starting"
fi

# A data directory an earlier image initialised preloads less; upgrade the line that image wrote
# (a later line wins), and leave a setting the operator changed alone.
conf="$PGDATA/postgresql.conf"
if ! grep -qx "shared_preload_libraries = '$PRELOAD'" "$conf" \
  && grep -qx "shared_preload_libraries = 'pg_cron,pgaudit'" "$conf"; then
  echo "shared_preload_libraries = '$PRELOAD'" >> "$conf"
  log "added pg_stat_statements to shared_preload_libraries"
fi

# pgBackRest's stanza (PGBACKREST_STANZA, set by the rendered Compose file) is created once the
# server is up and out of recovery, so WAL archiving works on a stack no stackctl manages
# (Dokploy); stanza-create is idempotent. Double fork: the waiter is tini's child, never the
# server's (the postmaster takes an unknown child's exit for a crashed backend).
if [ -n "${PGBACKREST_STANZA:-}" ] && command -v pgbackrest >/dev/null; then
  ( (
    for _ in $(seq 1 600); do
      if pg_isready -q -h /var/run/postgresql \
        && [ "$(psql -XAtq -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres \
               -c 'select pg_is_in_recovery()' 2>/dev/null)" = f ]; then
        if pgbackrest stanza-create >/dev/null 2>&1; then
          log "pgbackrest stanza $PGBACKREST_STANZA is ready"
        else
          log "pgbackrest stanza-create failed; \`stackctl backup\` creates the stanza too"
        fi
        exit 0
      fi
      sleep 1
    done
  ) & )
fi

tls=()
if [ -f "$TLS_DIR/server.crt" ] && [ -f "$TLS_DIR/server.key" ]; then
  tls=(-c ssl=on -c "ssl_cert_file=$TLS_DIR/server.crt" -c "ssl_key_file=$TLS_DIR/server.key")
fi
exec postgres "${tls[@]}" "${@:2}"
