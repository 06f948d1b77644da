#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the store tests and prints the URL to export as
# WEFT_TEST_POSTGRES_URL. Usage: .ci/postgres.sh start|stop [DIR]. initdb refuses root, so the
# cluster runs as user postgres, listening on 127.0.0.1 only, on a private port and socket dir.
set -euo pipefail
action=${1:-start}
dir=${2:-/tmp/weft-ci-pg}
port=${WEFT_PG_PORT:-55433}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
case "$action" in
start)
    if [ -f "$dir/data/postmaster.pid" ]; then
        su postgres -c "$bin/pg_ctl -D $dir/data -m fast stop" >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    chown postgres "$dir"
    su postgres -c "$bin/initdb -D $dir/data -A trust -U postgres" >"$dir/initdb.log"
    su postgres -c "$bin/pg_ctl -D $dir/data -l $dir/server.log -w \
        -o '-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on' start" >/dev/null
    psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE ROLE weft LOGIN SUPERUSER PASSWORD 'weft'"
    psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE weft OWNER weft"
    echo "postgres://weft:weft@127.0.0.1:$port/weft"
    ;;
stop)
    su postgres -c "$bin/pg_ctl -D $dir/data -m fast stop" >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop [DIR]" >&2
    exit 2
    ;;
esac
