#!/usr/bin/env bash
# Shows what `stackctl restore` works around (docs/backups.md, "Timelines"): after archive
# recovery ends with an end-of-recovery checkpoint, PostgreSQL's checkpointer can sleep through
# archive_timeout (only the new timeline's history file is archived while rows are written) until a
# CHECKPOINT wakes it. Plain PostgreSQL from our image (stackctl/postgres:17), no stackctl involved.
# Run: bash scripts/checkpointer-after-recovery.sh
set -euo pipefail
docker rm -f stackctl-checkpointer-demo >/dev/null 2>&1 || true
docker run -d --name stackctl-checkpointer-demo --entrypoint sleep stackctl/postgres:17 infinity >/dev/null
docker exec -u postgres stackctl-checkpointer-demo bash -c '
set -e
B=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
q() { psql -X -At -h /tmp -p $1 -d postgres -c "$2"; }
mkdir -p /tmp/arch
$B/initdb -D /tmp/a >/dev/null
cat >> /tmp/a/postgresql.conf <<EOF
port=5433
archive_mode=on
archive_command='"'"'cp %p /tmp/arch/%f'"'"'
archive_timeout=5
listen_addresses='"''"'
unix_socket_directories='"'"'/tmp'"'"'
EOF
$B/pg_ctl -D /tmp/a -l /tmp/a.log -w start >/dev/null
q 5433 "create table t(x int)" >/dev/null
$B/pg_basebackup -h /tmp -p 5433 -D /tmp/b -X none 2>/dev/null
q 5433 "insert into t select generate_series(1,1000)" >/dev/null
q 5433 "select pg_switch_wal()" >/dev/null; sleep 3
$B/pg_ctl -D /tmp/a -w -m immediate stop >/dev/null
sed -i "s/^port=5433/port=5434/" /tmp/b/postgresql.conf
echo "restore_command='"'"'cp /tmp/arch/%f %p'"'"'" >> /tmp/b/postgresql.conf
touch /tmp/b/recovery.signal
$B/pg_ctl -D /tmp/b -l /tmp/b.log -w start >/dev/null
until [ "$(q 5434 "select pg_is_in_recovery()")" = f ]; do sleep 0.2; done
echo "promoted (timeline $(q 5434 "select timeline_id from pg_control_checkpoint()"))"
for i in $(seq 1 200); do q 5434 "insert into t values (1)" >/dev/null; sleep 0.1; done
echo "after ~20 s of inserts (archive_timeout 5 s): $(q 5434 "select archived_count, last_archived_wal from pg_stat_archiver")"
q 5434 checkpoint
for i in $(seq 1 120); do q 5434 "insert into t values (1)" >/dev/null; sleep 0.1; done
echo "12 s after a CHECKPOINT:                       $(q 5434 "select archived_count, last_archived_wal from pg_stat_archiver")"
'
docker rm -f stackctl-checkpointer-demo >/dev/null
