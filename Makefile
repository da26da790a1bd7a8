# Algalon — the commands README.md names. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
FAKE_NVML_DIR := $(CURDIR)/target/fake-nvml
FAKE_NVML := $(FAKE_NVML_DIR)/libnvidia-ml.so.1
export ALGALON_TEST_NVML_LIB ?= $(FAKE_NVML)
export ALGALON_FAKE_NVML_DIR ?= $(FAKE_NVML_DIR)
# Tests that need promtool fail instead of skipping when it is missing.
export ALGALON_REQUIRE_PROMTOOL ?= 1
export ALGALON_REQUIRE_PEER_TOOLS ?= 1
export ALGALON_REQUIRE_VALGRIND ?= 1
export ALGALON_REQUIRE_CBINDGEN ?= 1

.PHONY: help
help: ## List the commands
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: ## Run the exporter (real GPUs, else simulated ones) into a local VMAgent + VictoriaMetrics
	scripts/demo.sh

.PHONY: deps
deps: ## Install the system and Python packages tests and demo need (Debian)
	scripts/install-deps.sh

.PHONY: fake-nvml
fake-nvml: ## Build the simulated GPU library at target/fake-nvml/libnvidia-ml.so.1
	$(CARGO) build -p fake-nvml
	mkdir -p $(FAKE_NVML_DIR)
	cp target/debug/libnvidia_ml.so $(FAKE_NVML).tmp && mv $(FAKE_NVML).tmp $(FAKE_NVML)

.PHONY: build
build: ## Build every crate (debug)
	$(CARGO) build --workspace

.PHONY: fmt
fmt: ## Format Rust and Python sources
	$(CARGO) fmt --all
	ruff format .

.PHONY: lint
lint: ## cargo fmt --check, clippy -D warnings, ruff
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	ruff check .
	ruff format --check .
	$(MAKE) -s header-check

.PHONY: doc
doc: ## API docs, warnings as errors
	RUSTDOCFLAGS=-Dwarnings $(CARGO) doc --workspace --no-deps

.PHONY: test-rust
test-rust: fake-nvml ## Rust unit and integration tests (against the fake NVML)
	# The C tests link libalgalon.{so,a}, which `cargo test` alone does not produce.
	$(CARGO) build -p algalon-ffi
	$(CARGO) test

.PHONY: test-python
test-python: fake-nvml ## Python tests: the fake NVML through nvidia-ml-py, the exposition through prometheus_client
	python3 -m pytest -q testing/tests algalon-core/tests/python

.PHONY: python-pkg
python-pkg: ## Build the algalon wheel (abi3) with maturin and install it into python3
	rm -rf target/wheels && maturin build -q -m algalon-py/Cargo.toml -o target/wheels
	python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --force-reinstall --no-deps --no-index --find-links target/wheels algalon

.PHONY: test-python-pkg
test-python-pkg: fake-nvml python-pkg ## The algalon package's tests against the installed wheel, and its stubs
	python3 -m pytest -q algalon-py/tests
	python3 -m mypy.stubtest algalon

.PHONY: test-compose
test-compose: fake-nvml ## compose/ end to end: schema, dashboards, dry runs, setup.sh, live VMAgent/VictoriaMetrics/vmalert pipeline
	scripts/e2e-pipeline.sh

.PHONY: lint-compose
lint-compose: ## compose/ static checks only (seconds)
	scripts/e2e-pipeline.sh --static-only

.PHONY: dashboards
dashboards: ## Regenerate compose/host/grafana/dashboards/algalon-*.json from their generator
	python3 compose/host/grafana/build_dashboards.py

.PHONY: test
test: deps lint test-rust test-python test-python-pkg test-compose doc ## Everything CI runs (installs what is missing first)

.PHONY: golden
golden: fake-nvml ## Regenerate the golden .prom files after an intended output change
	UPDATE_GOLDEN=1 $(CARGO) test -p algalon-core --test exposition

.PHONY: bench
bench: fake-nvml ## Criterion benchmarks (sample + encode through the fake NVML, encode alone)
	$(CARGO) bench -p algalon-benches --bench sample_encode

.PHONY: bench-own-work
bench-own-work: fake-nvml ## Algalon's own instructions per sample vs time inside NVML (callgrind)
	python3 benches/scripts/own-work.py

.PHONY: bench-exporter
bench-exporter: ## wrk against a release exporter on loopback: throughput, latency, CPU, RSS, idle CPU
	benches/scripts/exporter-load.sh

.PHONY: bench-compare
bench-compare: ## Algalon vs nvitop-exporter, a hand-written pynvml exporter and an nvidia-smi-per-scrape model (~5 min + release build); rewrites BENCHMARKS.md's comparison
	python3 benches/compare/compare.py --write BENCHMARKS.md --json target/bench-compare.json

.PHONY: bench-compare-quick
bench-compare-quick: ## Smoke run of bench-compare: every exporter starts, every path runs once, fidelity asserted
	python3 -m pytest -q benches/compare
	python3 benches/compare/compare.py --quick

.PHONY: metrics-doc
metrics-doc: ## Print the metric table README.md embeds (checked by a test)
	@$(CARGO) run -q -p algalon-examples --example metric_table

# The C ABI's targets: header, header-check, test-c, examples-c, install.
include algalon-ffi/ffi.mk
