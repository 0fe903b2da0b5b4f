# tickdb: `make run` starts a single node on 127.0.0.1:6379 with data in ./data;
# `make test` runs the whole test suite. Both install what a fresh machine lacks first.

# One build directory per machine, shared by every clone: RocksDB's C++ takes ~11 minutes.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/tickdb-target
CARGO ?= cargo

.PHONY: deps build run test lint fmt clippy check-core fuzz-smoke bench bench-cluster sim

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build --release -p tickdb-server

run: build
	$(CARGO_TARGET_DIR)/release/tickdb --data-dir ./data $(ARGS)

# The binary is built first: the integration tests run it as a separate process.
test: build
	$(CARGO) test --release --workspace

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
