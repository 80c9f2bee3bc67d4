#!/usr/bin/env bash
# The SQL regression suite: every file in sql/regress/sql runs against a real
# server with the extension installed; its output must equal
# sql/regress/expected. Diffs land in target/sql-regress/regression.diffs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
export ENGRAM_PG_DIR=${ENGRAM_PG_DIR:-/tmp/engram-regress-pg}
export ENGRAM_PG_PORT=${ENGRAM_PG_PORT:-5498}
"$here/install-extension.sh" >/dev/null
"$here/pg.sh" destroy
"$here/pg.sh" start
trap '"$here/pg.sh" stop' EXIT
tests=$(cd "$root/sql/regress/sql" && ls *.sql | sed 's/\.sql$//' | sort)
out="$root/target/sql-regress"; mkdir -p "$out"
/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
  --inputdir="$root/sql/regress" --outputdir="$out" \
  --host="$ENGRAM_PG_DIR" --port="$ENGRAM_PG_PORT" --user=postgres \
  --dbname=engram_regress $tests
