# Thin wrapper over CMake. `make run` and `make test` are the README's two commands.
BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CI         ?=
WERROR     := $(if $(filter true 1 yes,$(CI)),ON,OFF)
ARGS       ?=

.PHONY: all build deps deps-runtime run test unit fuzz-build fuzz clean asan asan-build demo

all: build

# Everything the tests need (make test) ...
deps:
	@bash scripts/install-deps.sh

# ... or only what building and running the relay needs (make run).
deps-runtime:
	@bash scripts/install-deps.sh --runtime

build:
	@cmake -S . -B $(BUILD) -DWERROR=$(WERROR) -DBUILD_TESTING=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Only the relay, and the unit tests only when Criterion is there (the
# runtime set of install-deps.sh has no test libraries).
RUN_TESTING = $(shell pkg-config --exists criterion 2>/dev/null && echo ON || echo OFF)
run: deps-runtime
	@cmake -S . -B $(BUILD) -DWERROR=$(WERROR) -DBUILD_TESTING=$(RUN_TESTING) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target wtrelay
	./$(BUILD)/wtrelay $(ARGS)

# The JavaScript client's example page against a local relay: prints the URL.
demo: build
	@bash scripts/demo.sh

fuzz-build:
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DFUZZ=ON -DWERROR=$(WERROR) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

# ASan+UBSan build of everything (the sanitizer tier; fuzzers have their own).
asan-build:
	@cmake -S . -B $(ASAN_BUILD) -DASAN=ON -DWERROR=$(WERROR) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# Every tier except perf: unit, integration, netns, browser (build/); unit and
# integration again under ASan+UBSan with leak checks (build-asan/, the
# sanitizer tier, docs/testing.md); fuzz (build-fuzz/, also sanitized).
test: deps build asan-build fuzz-build
	ctest --test-dir $(BUILD) --output-on-failure
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -L 'unit|integration'
	ctest --test-dir $(FUZZ_BUILD) --output-on-failure -j $(JOBS)

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -L unit

fuzz: fuzz-build
	ctest --test-dir $(FUZZ_BUILD) --output-on-failure -j $(JOBS)

# The sanitizer tier alone.
asan: asan-build
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -L 'unit|integration'

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD)
