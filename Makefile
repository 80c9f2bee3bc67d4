# engram — the two commands a newcomer needs are `make demo` and `make test`.
# Both set up what a fresh machine lacks first (scripts/setup.sh, idempotent).

SHELL := /bin/bash
PGRX_TEST_DIR ?= /tmp/pgrx-test

.PHONY: setup demo test test-engine test-loom test-pg test-sql test-pg-integration lint fmt bench-storage bench-storage-quick bench-kernels bench-ann bench-ann-quick bench-pgvector bench-generate ann-data clean-pg

setup:
	@bash scripts/setup.sh

## The main job: the embedded engine demo, then pg_engram in a throwaway cluster.
demo: setup
	cargo run --release -q -p engram --example demo
	bash scripts/demo-pg.sh

## The whole suite: formatting and lints, engine and integration tests,
## pgrx tests through a real server, and the SQL regression suite.
test: setup lint test-engine test-loom test-pg test-sql test-pg-integration
	@echo "make test: all suites passed"

test-engine:
	cargo test --workspace --exclude pg_engram

## The HNSW build's locking under loom: all interleavings of small models
## with up to 3 preemptions each.
test-loom:
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 \
	  cargo test --release -p engram --lib loom_tests

test-pg:
	mkdir -p $(PGRX_TEST_DIR) && chown postgres $(PGRX_TEST_DIR)
	cd pg_extension && cargo pgrx test pg15 --runas postgres --pgdata $(PGRX_TEST_DIR)/data

test-sql:
	bash scripts/sql-suite.sh

## Several connections, SIGKILL and restarts, pg_dump/restore, 8 backends for 30 s.
test-pg-integration:
	bash scripts/pg-integration.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

## Benchmarks write target/bench/<name>.json.
bench-storage:
	cargo run --release -q -p engram-benches --bin bench_storage -- 1000000
	bash scripts/bench-sql-insert

bench-kernels:
	cargo run --release -q -p engram-benches --bin bench_kernels
	cargo bench -q -p engram-benches --bench kernels

## Make (once) the real sentence embeddings the ANN tests and benchmarks use.
ann-data:
	bash scripts/make-ann-data

## Real sentence embeddings (scripts/make-ann-data), engram against hnswlib
## in the same run: target/bench/ann.json. ANN_N caps the rows (default all).
bench-ann:
	bash scripts/bench-ann $(if $(ANN_N),--n $(ANN_N))

## A CI-sized run on 20,000 rows: target/bench/ann-quick.json.
bench-ann-quick:
	bash scripts/bench-ann --n 20000 --queries 200 --name ann-quick

## engram's SQL search against pgvector 0.8 (installed beforehand by the user) in the
## same server: target/bench/pgvector.json.
bench-pgvector:
	bash scripts/bench-pgvector $(if $(ANN_N),--n $(ANN_N))

## Retrieval-based generation on Shakespeare (whole plays held out) against
## Kneser-Ney, infini-gram, PPMd and zpaq in the same run: target/bench/generate.json.
bench-generate:
	bash scripts/bench-generate

bench-storage-quick:
	cargo run --release -q -p engram-benches --bin bench_storage -- 50000

clean-pg:
	bash scripts/pg.sh destroy
