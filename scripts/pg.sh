#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for demos, the SQL suite and benchmarks,
# run as the postgres user on its own port and socket directory.
#   scripts/pg.sh start | stop | psql [args...]
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
D=${ENGRAM_PG_DIR:-/tmp/engram-pg}
PORT=${ENGRAM_PG_PORT:-5499}

case "${1:-}" in
  start)
    mkdir -p "$D"; chown postgres "$D"
    if [ ! -f "$D/data/PG_VERSION" ]; then
      sudo -u postgres "$BIN/initdb" -D "$D/data" -A trust >/dev/null
    fi
    if ! sudo -u postgres "$BIN/pg_ctl" -D "$D/data" status >/dev/null 2>&1; then
      sudo -u postgres "$BIN/pg_ctl" -D "$D/data" -w -o "-p $PORT -k $D -c listen_addresses=''" -l "$D/log" start >/dev/null
    fi
    echo "postgres: running on socket $D port $PORT"
    ;;
  stop)
    if [ -f "$D/data/PG_VERSION" ]; then
      sudo -u postgres "$BIN/pg_ctl" -D "$D/data" -w -m fast stop >/dev/null 2>&1 || true
    fi
    ;;
  destroy)
    "$0" stop; rm -rf "$D"
    ;;
  psql)
    shift; exec psql -h "$D" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 "$@"
    ;;
  *) echo "usage: $0 start|stop|destroy|psql [args]" >&2; exit 2 ;;
esac
