#!/usr/bin/env bash
# The PostgreSQL half of the demo: install the extension into a throwaway
# cluster, create it, show what it answers, stop the cluster.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export ENGRAM_PG_DIR=${ENGRAM_PG_DIR:-/tmp/engram-demo-pg}
echo "== installing pg_engram (release build)"
"$here/install-extension.sh" --release >/dev/null
"$here/pg.sh" destroy
"$here/pg.sh" start
trap '"$here/pg.sh" stop' EXIT
"$here/pg.sh" psql -d postgres -c 'CREATE EXTENSION pg_engram;' \
  -c "SELECT extname, extversion, extnamespace::regnamespace AS schema FROM pg_extension WHERE extname = 'pg_engram';" \
  -c 'SELECT engram.version() AS version, engram.format_version() AS format_version;'
"$here/pg.sh" psql -d postgres -f "$here/../sql/examples/stores.sql"
"$here/pg.sh" psql -d postgres -v sample="$(cd "$here/../tests/data/kjv-sample" && pwd)" \
  -f "$here/../sql/examples/verses.sql"
"$here/pg.sh" psql -d postgres -v sample="$(cd "$here/../tests/data/kjv-sample" && pwd)" \
  -f "$here/../sql/examples/generate.sql"
echo "== demo cluster stopped"
