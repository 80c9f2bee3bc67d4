#!/usr/bin/env bash
# Multi-connection tests of the store model against a real server: starts a
# throwaway cluster with pg_engram installed, runs tests/tests/pg_store.rs
# (its tests are #[ignore]d in plain `cargo test`), stops the cluster.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export ENGRAM_PG_DIR=${ENGRAM_PG_DIR:-/tmp/engram-it-pg}
export ENGRAM_PG_PORT=${ENGRAM_PG_PORT:-5496}
"$here/install-extension.sh" >/dev/null
"$here/pg.sh" destroy
"$here/pg.sh" start
trap '"$here/pg.sh" stop' EXIT
cd "$here/.."
cargo test -p engram-tests --test pg_store -- --ignored --test-threads=1 --nocapture
