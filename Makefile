# Vigil: make demo | make test (both as root). See README.md.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test test-unit test-root demo bench clean

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

# Both refuse skips, disabled tests and an empty selection, like `make test`.
test-unit: build
	scripts/run-tests.sh $(BUILD) unit

test-root: build
	scripts/run-tests.sh $(BUILD) 'root|e2e'

demo: build
	scripts/demo.sh $(BUILD)

bench: build
	@scripts/deps.sh --bench
	bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD)
