# Vigil: make demo | make test (both as root). See README.md.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test test-unit test-root demo bench fuzz clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# Every tier: unit (no root), root/BPF on this kernel, end to end with the real binaries.
test: build
	scripts/run-tests.sh $(BUILD)
	$(MAKE) fuzz FUZZ_SECONDS=15

# Both refuse skips, disabled tests and an empty selection, like `make test`.
test-unit: build
	scripts/run-tests.sh $(BUILD) unit

test-root: build
	scripts/run-tests.sh $(BUILD) 'root|e2e'

demo: build
	scripts/demo.sh $(BUILD)

# Fuzz targets (fuzz/README.md): a clang build with libFuzzer and sanitizers
# in $(FUZZ_BUILD), each target run FUZZ_SECONDS; a crash fails and is kept.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
FUZZ_CMAKE_FLAGS ?= $(if $(shell command -v ccache),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)

fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DVIGIL_FUZZ=ON -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ $(FUZZ_CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: build
	@scripts/deps.sh --bench
	bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
