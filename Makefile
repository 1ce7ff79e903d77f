# The two commands a user needs: `make run` and `make test`. Everything else is a convenience for developers.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
PRESET ?= release

.PHONY: all setup build run test unit-test test-gpu format format-check asan fuzz bench clean

all: build

setup:
	@scripts/setup

build/$(PRESET)/build.ninja:
	cmake --preset $(PRESET) > /dev/null

build: build/$(PRESET)/build.ninja
	cmake --build --preset $(PRESET) -j $(JOBS)
	@ln -sfn $(PRESET)/loom build/loom

# Serves the bundled demo model (models/demo: a small Gemma 3 that answers questions about pictures of shapes).
run: setup build
	build/loom serve --model models/demo --host 127.0.0.1 --port 8080

test: setup format-check build
	ctest --preset $(PRESET) -j $(JOBS)
	@scripts/fuzz_smoke

unit-test: build
	ctest --preset $(PRESET) -j $(JOBS)

format:
	@git ls-files '*.h' '*.cpp' '*.cu' '*.cuh' | xargs -r clang-format -i

format-check:
	@git ls-files '*.h' '*.cpp' '*.cu' '*.cuh' | xargs -r clang-format --dry-run --Werror
	@echo "format: clean"

# On a machine with an NVIDIA GPU and nvcc: the CUDA backend's op tests and the model goldens on the GPU.
test-gpu:
	cmake --preset cuda > /dev/null
	cmake --build --preset cuda -j $(JOBS) --target cuda_tests model_tests
	build/cuda/tests/cuda_tests
	build/cuda/tests/model_tests

asan:
	cmake --preset asan > /dev/null
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

fuzz:
	cmake --preset fuzz > /dev/null
	cmake --build --preset fuzz -j $(JOBS)

bench: build
	@scripts/bench

clean:
	rm -rf build
