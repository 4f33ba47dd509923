#!/bin/sh
# `stackctl backup verify`, inside a one-off container of our PostgreSQL image, as `postgres`,
# with the repository, pgbackrest.conf and an empty scratch volume at $PGDATA mounted:
#  1. pgbackrest verify: every file in the repository against its checksum;
#  2. the newest backup restored into the scratch volume, recovered to its consistent point;
#  3. a server started on it with archiving OFF (a scratch copy must never push WAL into the
#     repository) and no preloaded libraries (pg_cron must not run jobs on the copy);
#  4. in every database: amcheck on every valid B-tree index, heap included, and a row count per
#     table, printed as one JSON object per database on stdout. Everything else goes to stderr.
set -eu

log() { echo "verify: $*" >&2; }

log "checking the repository's checksums (pgbackrest verify)"
pgbackrest --stanza=main verify >&2

log "restoring the newest backup into the scratch volume"
pgbackrest --stanza=main --delta --type=immediate --target-action=promote restore >&2

log "starting PostgreSQL on the copy"
pg_ctl -D "$PGDATA" -w -t 600 -l /tmp/verify-server.log \
  -o "-c archive_mode=off -c listen_addresses='' -c shared_preload_libraries=''" start >&2 || {
  cat /tmp/verify-server.log >&2
  exit 1
}
until [ "$(psql -XAtq -d postgres -c 'select pg_is_in_recovery()')" = f ]; do sleep 0.5; done

psql -XAtq -d postgres -c "select datname from pg_database where datallowconn order by 1" |
  while IFS= read -r db; do
    log "checking database $db"
    psql -XAtq -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
CREATE EXTENSION IF NOT EXISTS amcheck;
WITH checked AS (
  SELECT count(bt_index_check(c.oid, true)) AS n
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_am a ON a.oid = c.relam
  WHERE a.amname = 'btree' AND c.relpersistence <> 't' AND i.indisvalid AND i.indisready
), tables AS (
  SELECT format('%I.%I', n.nspname, c.relname) AS name,
         (xpath('/row/c/text()',
                query_to_xml(format('select count(*) as c from %I.%I', n.nspname, c.relname),
                             false, true, '')))[1]::text::bigint AS row_count
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
)
SELECT json_build_object(
  'database', current_database(),
  'indexes_checked', (SELECT n FROM checked),
  'tables', coalesce((SELECT json_object_agg(name, row_count ORDER BY name) FROM tables), '{}'::json)
);
SQL
  done

pg_ctl -D "$PGDATA" -m fast -w stop >&2
log "done"
