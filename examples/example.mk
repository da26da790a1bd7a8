# Shared by examples/c/Makefile and examples/cpp/Makefile, which set ROOT,
# CARGO, EXAMPLE_DIR (c or cpp), SOURCE and COMPILE (compiler and flags).
LIBDIR   := $(ROOT)/target/debug
INCLUDE  := $(ROOT)/algalon-ffi/include
OUT      := $(ROOT)/target/examples/$(EXAMPLE_DIR)
FAKE     := $(ROOT)/target/fake-nvml/libnvidia-ml.so.1
SCENARIO ?= $(ROOT)/algalon-core/tests/scenarios/constant.json
# What a Rust staticlib needs from the system (rustc --print native-static-libs).
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl

.PHONY: all run real build lib fake clean
all: run

lib:
	cd $(ROOT) && $(CARGO) build -p algalon-ffi

fake:
	$(MAKE) -C $(ROOT) fake-nvml

$(OUT):
	mkdir -p $@

build: lib | $(OUT)
	$(COMPILE) -I$(INCLUDE) $(SOURCE) -L$(LIBDIR) -lalgalon -o $(OUT)/gpu_report
	$(COMPILE) -I$(INCLUDE) $(SOURCE) $(LIBDIR)/libalgalon.a $(STATIC_LIBS) -o $(OUT)/gpu_report_static

run: build fake
	ALGALON_NVML_LIB=$(FAKE) ALGALON_FAKE_NVML_SCENARIO=$(SCENARIO) \
	  LD_LIBRARY_PATH=$(LIBDIR) $(OUT)/gpu_report
	ALGALON_NVML_LIB=$(FAKE) ALGALON_FAKE_NVML_SCENARIO=$(SCENARIO) \
	  $(OUT)/gpu_report_static

real: build
	LD_LIBRARY_PATH=$(LIBDIR) $(OUT)/gpu_report

clean:
	rm -rf $(OUT)
