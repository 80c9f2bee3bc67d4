#!/usr/bin/env bash
# Build pg_engram and install it into Debian's PostgreSQL 15 directories.
set -euo pipefail
cd "$(dirname "$0")/../pg_extension"
cargo pgrx install ${ENGRAM_PROFILE:+--profile "$ENGRAM_PROFILE"} --pg-config /usr/lib/postgresql/15/bin/pg_config "$@"

# The Model2Vec model that `"embedder": "model2vec"` names, beside the
# extension's SQL files (distilled offline: scripts/model2vec).
models=$(/usr/lib/postgresql/15/bin/pg_config --sharedir)/extension/pg_engram/models
mkdir -p "$models"
rm -rf "$models/minilm-m2v-128"
cp -r ../models/minilm-m2v-128 "$models/"
