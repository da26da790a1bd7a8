# Distribution and release: the Python wheel and sdist, the crates, the C
# library tarball, checksums, the version/tag check, and the tests that keep
# them and .github/workflows/ honest. Included by the root Makefile, which
# provides CARGO and the fake-nvml target. The release workflow runs only
# these targets; `make test` runs each of them (see tests/release/).

WHEEL_PROFILE ?= release
WHEEL_DIR ?= target/wheels
DIST_DIR ?= target/dist

.PHONY: wheel
wheel: ## The algalon wheel: abi3 (CPython >= 3.9), manylinux2014 via zig, checked by auditwheel, into WHEEL_DIR (target/wheels)
	scripts/build-wheel.sh --profile $(WHEEL_PROFILE) --out $(WHEEL_DIR)

.PHONY: sdist
sdist: ## The algalon source distribution into WHEEL_DIR (target/wheels)
	scripts/build-wheel.sh --sdist --out $(WHEEL_DIR)

.PHONY: test-wheel
test-wheel: fake-nvml python-pkg ## The wheel's tag (auditwheel), a job in a fresh venv without Rust, a wheel built from the sdist alone
	python3 -m pytest -q tests/wheel

.PHONY: crates
crates: fake-nvml ## cargo package (core, kubernetes, exporter), package contents, cargo install of the packaged exporter
	scripts/crates.sh check

.PHONY: publish-crates
publish-crates: ## Publish algalon-core and algalon-exporter to crates.io (release job; CARGO_REGISTRY_TOKEN)
	scripts/crates.sh publish

.PHONY: c-tarball
c-tarball: ## DIST_DIR/libalgalon-VERSION-linux-ARCH.tar.gz: libalgalon.so/.a, algalon.h, algalon.pc
	scripts/release.sh c-tarball $(DIST_DIR)

.PHONY: checksums
checksums: ## DIST_DIR/SHA256SUMS over every artifact under DIST_DIR
	scripts/release.sh checksums $(DIST_DIR)

.PHONY: image
IMAGE ?= algalon-exporter:local
PLATFORMS ?=
PUSH ?= 0
image: ## The exporter image from compose/worker/Dockerfile as IMAGE (algalon-exporter:local), OCI labels; PLATFORMS=linux/amd64,linux/arm64 PUSH=1 in the release job
	scripts/release.sh image "$(IMAGE)" "$(PLATFORMS)" "$(PUSH)"

.PHONY: version
version: ## Print the version every artifact carries ([workspace.package] in Cargo.toml)
	@scripts/release.sh version

.PHONY: check-tag
check-tag: ## Fail unless TAG (v1.2.3) is the workspace version and CHANGELOG.md has its section
	scripts/release.sh check-tag "$(TAG)"

.PHONY: test-release
test-release: fake-nvml ## Workflows vs GitHub's schema, shellcheck of their steps, C tarball + checksums, version and tag checks
	python3 -m pytest -q tests/release

.PHONY: test-page
test-page: fake-nvml ## The live page at / in headless Chromium: cards, updates, history, lost GPU, exporter restart
	$(CARGO) build -p algalon-exporter
	python3 -m pytest -q tests/browser
