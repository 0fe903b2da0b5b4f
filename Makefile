# tickdb: `make run` starts a single node on 127.0.0.1:6379 with data in ./data;
# `make test` runs the whole test suite. Both install what a fresh machine lacks first.

# One build directory per machine, shared by every clone: RocksDB's C++ takes ~11 minutes.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/tickdb-target
CARGO ?= cargo

.PHONY: deps build run test lint fmt clippy check-core fuzz-smoke bench bench-cluster sim nemesis redis-py-suite

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build --release -p tickdb-server

run: build
	$(CARGO_TARGET_DIR)/release/tickdb --data-dir ./data $(ARGS)

# The binary is built first: the integration tests run it as a separate process. This includes
# a ~60 s run of the fault suite (tests/tests/nemesis.rs; needs root for network namespaces)
# and redis-py's own time-series tests (below), so `make test` is everything CI runs as tests.
test: build
	$(CARGO) test --release --workspace
	@bash tests/redis_py_suite.sh

# The real-cluster fault suite alone, as long as asked: `make nemesis SECONDS=600 SEED=42`.
# Without SEED a seed is drawn and printed; a failure prints the command that replays it.
SECONDS ?= 120
SEED ?=
nemesis: build
	TICKDB_NEMESIS_SECONDS=$(SECONDS) TICKDB_NEMESIS_SEED=$(SEED) \
		$(CARGO) test --release -p tickdb-tests --test nemesis -- --nocapture

# redis-py's own time-series tests (release 8.1.0, from its PyPI sdist, unpatched) against a
# fresh node, RESP2 and RESP3; needs python3 with venv and PyPI. See tests/redis_py_suite.sh.
redis-py-suite: build
	@bash tests/redis_py_suite.sh

fmt:
	$(CARGO) fmt --all -- --check

clippy: deps
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

check-core:
	@bash scripts/check-core-deps.sh

lint: fmt check-core clippy

# About a minute of fuzzing over every target (nightly toolchain, cargo-fuzz).
fuzz-smoke:
	@bash scripts/fuzz-smoke.sh

bench: build
	@bash bench/run.sh

bench-cluster: build
	@bash bench/cluster.sh
