#!/usr/bin/env bash
# Build pg_engram and install it into Debian's PostgreSQL 15 directories.
set -euo pipefail
cd "$(dirname "$0")/../pg_extension"
cargo pgrx install ${ENGRAM_PROFILE:+--profile "$ENGRAM_PROFILE"} --pg-config /usr/lib/postgresql/15/bin/pg_config "$@"
