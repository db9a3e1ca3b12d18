# Thin wrapper over CMake. `make run` and `make test` are the README's two commands.
BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CI         ?=
WERROR     := $(if $(filter true 1 yes,$(CI)),ON,OFF)
ARGS       ?=

.PHONY: all build deps run test unit fuzz-build fuzz clean asan

all: build

deps:
	@bash scripts/install-deps.sh

build:
	@cmake -S . -B $(BUILD) -DWERROR=$(WERROR) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: deps build
	./$(BUILD)/wtrelay $(ARGS)

fuzz-build:
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DFUZZ=ON -DWERROR=$(WERROR) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

# Every tier except perf: unit, integration, browser (build/), fuzz (build-fuzz/).
test: deps build fuzz-build
	ctest --test-dir $(BUILD) --output-on-failure
	ctest --test-dir $(FUZZ_BUILD) --output-on-failure -j $(JOBS)

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -L unit

fuzz: fuzz-build
	ctest --test-dir $(FUZZ_BUILD) --output-on-failure -j $(JOBS)

asan:
	@cmake -S . -B build-asan -DASAN=ON -DWERROR=$(WERROR) >/dev/null
	@cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -L unit

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) build-asan
