# Algalon — the commands README.md names. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
# A field of Cargo.toml's [workspace.package], e.g. $(call workspace_field,version).
workspace_field = $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^$(1) = "\(.*\)"/\1/p' $(CURDIR)/Cargo.toml)
FAKE_NVML_DIR := $(CURDIR)/target/fake-nvml
FAKE_NVML := $(FAKE_NVML_DIR)/libnvidia-ml.so.1
export ALGALON_TEST_NVML_LIB ?= $(FAKE_NVML)
export ALGALON_FAKE_NVML_DIR ?= $(FAKE_NVML_DIR)
# Tests that need promtool fail instead of skipping when it is missing.
export ALGALON_REQUIRE_PROMTOOL ?= 1
export ALGALON_REQUIRE_PEER_TOOLS ?= 1
export ALGALON_REQUIRE_VALGRIND ?= 1
export ALGALON_REQUIRE_CBINDGEN ?= 1
export ALGALON_REQUIRE_KUBELET_STANDIN ?= 1
export ALGALON_REQUIRE_KUBECTL ?= 1

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
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --all
	ruff format .

.PHONY: lint
lint: ## cargo fmt --check, clippy -D warnings (with the rust-version check), ruff, header-check
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --all --check
	# The fuzz crate is its own workspace; sharing target/ reuses the main build's dependencies.
	# It cannot inherit rust-version, so clippy's incompatible_msrv gets it from a clippy.toml.
	mkdir -p target/clippy-fuzz
	echo 'msrv = "$(call workspace_field,rust-version)"' > target/clippy-fuzz/clippy.toml
	CLIPPY_CONF_DIR=$(CURDIR)/target/clippy-fuzz $(CARGO) clippy --manifest-path fuzz/Cargo.toml --target-dir target --workspace --all-targets -- -D warnings
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
	# The fuzz targets' checks over their committed seeds, on stable.
	$(CARGO) test --manifest-path fuzz/support/Cargo.toml --target-dir target

.PHONY: test-python
test-python: fake-nvml ## Python tests: the fake NVML through nvidia-ml-py, the exposition through prometheus_client
	python3 -m pytest -q testing/tests algalon-core/tests/python

.PHONY: python-pkg
python-pkg: ## Build the algalon wheel (dev profile; abi3, manylinux2014) and install it into python3
	$(MAKE) -s wheel WHEEL_PROFILE=dev WHEEL_DIR=target/wheels
	python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --force-reinstall --no-deps --no-index --find-links target/wheels algalon

.PHONY: test-python-pkg
test-python-pkg: fake-nvml python-pkg ## The algalon package's tests against the installed wheel, and its stubs
	# test_faces.py runs the same job through libalgalon and compares the reports.
	$(CARGO) build -p algalon-ffi
	python3 -m pytest -q algalon-py/tests
	python3 -m mypy.stubtest algalon

.PHONY: test-compose
test-compose: fake-nvml ## compose/ end to end: schema, dashboards, dry runs, setup.sh, live VMAgent/VictoriaMetrics/vmalert pipeline
	scripts/e2e-pipeline.sh

.PHONY: test-containers
test-containers: fake-nvml python-pkg ## compose/ in a real Docker engine: make image, the wheel in a Python container without Rust, setup.sh single-node/host/workers, VictoriaMetrics outage, alert, bad input (stand-in images, built once)
	scripts/e2e-containers.sh

.PHONY: test-ha
test-ha: fake-nvml ## compose/ha in the Docker engine: kill one VictoriaMetrics, one VMAgent, one vmauth in turn under scrape load; no failed query, no lost sample (about 3 min)
	scripts/e2e-ha.sh

.PHONY: lint-compose
lint-compose: ## compose/ static checks only (seconds)
	scripts/e2e-pipeline.sh --static-only

.PHONY: dashboards
dashboards: ## Regenerate compose/host/grafana/dashboards/algalon-*.json from their generator
	python3 compose/host/grafana/build_dashboards.py

.PHONY: test
test: deps lint test-rust test-python test-python-pkg test-wheel test-page crates test-compose test-containers test-ha test-soak test-release bench-compare-quick bench-fleet-quick fuzz-smoke doc ## Everything CI runs (installs what is missing first)

.PHONY: golden
golden: fake-nvml ## Regenerate the golden exposition files (core encoder, exporter /metrics over HTTP, MIG instances with -d g+i) after an intended output change
	UPDATE_GOLDEN=1 $(CARGO) test -p algalon-core --test exposition --test own_series
	UPDATE_GOLDEN=1 $(CARGO) test -p algalon-exporter --test http_golden --test mig

.PHONY: dcgm-data
dcgm-data: ## Regenerate the core's DCGM field names and XID texts from testing/upstream/ (checked by a test)
	UPDATE_DCGM_DATA=1 $(CARGO) test -p algalon-core --test dcgm_data

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

.PHONY: fleet-sim
fleet-sim: fake-nvml ## Build the fleet simulator (release): many simulated 8-GPU exporters in one process
	$(CARGO) build --release -p algalon-benches --bin fleet-sim

.PHONY: bench-fleet
bench-fleet: fleet-sim ## One VMAgent + one VictoriaMetrics against 1k…24k simulated GPUs at 5 s (~20 min); figures to target/fleet.json
	ulimit -n 65536 2>/dev/null || true; python3 benches/fleet/fleet.py --json target/fleet.json

.PHONY: bench-fleet-quick
bench-fleet-quick: fleet-sim ## Smoke run of bench-fleet (< 60 s): 2 small steps; every target up, >= 98 % of samples stored
	python3 -m pytest -q benches/fleet
	$(CARGO) test -q -p algalon-benches --bin fleet-sim
	python3 benches/fleet/fleet.py --quick

.PHONY: bench-freshness
bench-freshness: fake-nvml ## A reading changed in the fake NVML until VictoriaMetrics returns it (exporter + vmagent at 5 s), p50/p99 over 30 changes (~5 min)
	$(CARGO) build --release -p algalon-exporter
	python3 benches/fleet/freshness.py --changes 30 --json target/freshness.json

.PHONY: test-soak
test-soak: fake-nvml ## Soak, 60 s: release exporter at 10 ms with process churn; RSS/fds/threads bounded, process series exact
	python3 scripts/soak.py --self-test
	python3 scripts/soak.py --ci

.PHONY: soak
soak: fake-nvml ## Soak, 20 min (~120,000 samples): summary printed and written to target/soak.json
	python3 scripts/soak.py --progress --json target/soak.json

.PHONY: fuzz-smoke
fuzz-smoke: ## Every fuzz target for 15 s (CI); fails on any crash and prints its replay command
	scripts/fuzz.sh smoke 15

FUZZ_SECONDS ?= 300
.PHONY: fuzz
fuzz: ## Every fuzz target for FUZZ_SECONDS (300) each; one target: scripts/fuzz.sh run TARGET SECONDS
	scripts/fuzz.sh smoke $(FUZZ_SECONDS)

.PHONY: fault-matrix
fault-matrix: fake-nvml ## NVML fault matrix: every NVML call x every error, core and exporter (RELIABILITY.md)
	$(CARGO) test -p algalon-core --test fault_matrix -- --nocapture
	$(CARGO) test -p algalon-exporter --test fault_matrix -- --nocapture

.PHONY: hostile
hostile: fake-nvml ## Hostile clients against a release exporter: floods, slowloris, auth timing (figures for RELIABILITY.md)
	$(CARGO) build --release -p algalon-exporter
	python3 scripts/hostile-clients.py

.PHONY: kubelet-standin
kubelet-standin: ## A kubelet pod-resources stand-in on target/kubelet.sock, switching states by testing/kubelet/scenarios/node.json's schedule
	python3 testing/kubelet/standin.py --scenario testing/kubelet/scenarios/node.json --socket $(CURDIR)/target/kubelet.sock --schedule

.PHONY: bench-kubelet
bench-kubelet: ## Kubernetes attribution with 500 pods on the node: List time, map build, refresher, memory; the exporter's scrape latency with a 2 s kubelet and its RSS (release build)
	python3 benches/scripts/kubelet-pods.py --pods 500 --measure 200
	python3 benches/scripts/kubelet-exporter.py --pods 500 --latency-ms 2000

.PHONY: metrics-doc
metrics-doc: ## Print the metric table README.md embeds (checked by a test)
	@$(CARGO) run -q -p algalon-examples --example metric_table

.PHONY: series-doc
series-doc: ## Print README.md's table of Algalon's own algalon_* series (checked by a test)
	@$(CARGO) run -q -p algalon-examples --example series_table

.PHONY: options-doc
options-doc: ## Print README.md's table of dcgm-exporter's options and variables (checked by a test)
	@$(CARGO) run -q -p algalon-examples --example dcgm_options

# The C ABI's targets: header, header-check, test-c, examples-c, install.
include algalon-ffi/ffi.mk
# Wheel, sdist, crates, C tarball, checksums, version: the release's targets.
include scripts/release.mk
