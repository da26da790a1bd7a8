# algalon-ffi: header, C/C++ checks (plain, ASan, valgrind) and install.
# Included by the root Makefile (`include algalon-ffi/ffi.mk`), which
# provides CARGO and the fake-nvml target.
CARGO ?= cargo
# The one pin of cbindgen's version, read by scripts/install-deps.sh and the
# header test too.
CBINDGEN_VERSION := $(strip $(file < $(CURDIR)/algalon-ffi/cbindgen-version))
PREFIX ?= /usr/local
# cbindgen expands algalon-ffi's macros first (see cbindgen.toml [parse.expand]).
CBINDGEN := RUSTC_BOOTSTRAP=algalon CARGO_EXPAND_TARGET_DIR=$(CURDIR)/target/cbindgen-expand cbindgen
CBINDGEN_ARGS := -q --config algalon-ffi/cbindgen.toml --crate algalon-ffi \
	--output algalon-ffi/include/algalon.h algalon-ffi
CBINDGEN_PINNED = cbindgen --version 2>/dev/null | grep -qx 'cbindgen $(CBINDGEN_VERSION)' || { \
	echo "need cbindgen $(CBINDGEN_VERSION): cargo install cbindgen --version $(CBINDGEN_VERSION) --locked (or make deps)" >&2; exit 1; }

.PHONY: header
header: ## Regenerate algalon-ffi/include/algalon.h with the pinned cbindgen
	@$(CBINDGEN_PINNED)
	$(CBINDGEN) $(CBINDGEN_ARGS)

.PHONY: header-check
header-check: ## Fail if the committed algalon.h is not what cbindgen generates
	@$(CBINDGEN_PINNED)
	@$(CBINDGEN) --verify $(CBINDGEN_ARGS) || { \
		echo "algalon-ffi/include/algalon.h is stale: run 'make header' and commit it" >&2; exit 1; }

.PHONY: test-c
test-c: fake-nvml ## C/C++ tests: gcc/g++ -Werror, shared + static libalgalon, valgrind, ASan + UBSan
	$(CARGO) build -p algalon-ffi
	$(CARGO) test -p algalon-ffi

.PHONY: examples-c
examples-c: fake-nvml ## Build and run the C and C++ examples against the fake NVML
	$(MAKE) -C examples/c run
	$(MAKE) -C examples/cpp run

.PHONY: install
install: ## Install libalgalon (.so, .a), algalon.h and algalon.pc under PREFIX (/usr/local)
	$(CARGO) build -p algalon-ffi --release
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 target/release/libalgalon.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 target/release/libalgalon.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 algalon-ffi/include/algalon.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(call workspace_field,version)|' algalon-ffi/algalon.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/algalon.pc

# The sanitizer run is part of `cargo test -p algalon-ffi` (and so of test-c
# and test-rust); a gcc without a working libasan is a failure, not a skip.
export ALGALON_REQUIRE_ASAN ?= 1

.PHONY: test-c-asan
test-c-asan: fake-nvml ## The C/C++ tests under AddressSanitizer + UBSan with LeakSanitizer (gcc)
	$(CARGO) build -p algalon-ffi
	$(CARGO) test -p algalon-ffi --test c_programs -- --exact c_tests_under_address_sanitizer_are_clean

.PHONY: test-c-valgrind
test-c-valgrind: fake-nvml ## The C tests under valgrind memcheck (no leaks, no invalid accesses)
	$(CARGO) build -p algalon-ffi
	$(CARGO) test -p algalon-ffi --test c_programs -- --exact c_tests_under_valgrind_are_leak_free
