# The two commands a new user needs: `make demo` and `make test`.
# Both build their own virtual environments from pyproject.toml; nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
# What a Raspberry Pi user installs: tflite-runtime + numpy<2, no TensorFlow, no ai-edge-litert.
PI_VENV := .venv-tflite-runtime
PI_PACKAGES := "tflite-runtime==2.14.*" "numpy<2" pillow pyserial flatbuffers tflite pytest
# The CPU build of torch, installed before the [torch] extra so the resolver never picks a CUDA build
# (several GB). On a machine with the CUDA wheels you want, set TORCH_PIN= (empty) or your own pin.
TORCH_PIN ?= torch==2.13.0
# onnx2tf pins TensorFlow 2.19 and numpy 1.26: it gets its own venv; edgert runs it as a child process.
ONNX2TF_VENV := .venv-onnx2tf
ONNX2TF_PACKAGES := onnx2tf==1.29.24

# The firmware tests (tests/firmware/test_qemu_*.py) build TFLite Micro for Cortex-M and boot it in QEMU.
FIRMWARE_APT := gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm

.PHONY: demo test lint test-main test-tflite-runtime test-aarch64 bench clean firmware-toolchain

demo: $(VENV)/.stamp
	$(VENV)/bin/edgert demo

test: lint test-main test-tflite-runtime test-aarch64

# ruff (pycodestyle, pyflakes, isort, bugbear, pyupgrade, naming) and mypy, both configured in pyproject.toml.
lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# pytest-xdist: one worker per core, at most 4 (each worker imports TensorFlow). A test file stays on one
# worker (--dist loadfile), so its module fixtures are built once. TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, len(os.sched_getaffinity(0))))")
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadfile

test-main: $(VENV)/.stamp $(ONNX2TF_VENV)/.stamp firmware-toolchain
	$(VENV)/bin/python -m pytest -q --durations=15 $(PYTEST_PARALLEL)

test-tflite-runtime: $(PI_VENV)/.stamp
	$(PI_VENV)/bin/python -m pytest -q -m runtime -p no:cacheprovider $(PYTEST_PARALLEL)

# The Raspberry Pi lane: an arm64 Debian 12 userland under qemu-user (root filesystem and both Pi venvs cached in
# ~/.cache/edgert/aarch64), edgert installed there from this clone and the Pi tests run in it. Needs root; skips
# with one line without it, fails under CI=true. See tools/aarch64_lane.py.
test-aarch64:
	EDGERT_PI_PACKAGES='$(PI_PACKAGES)' $(PYTHON) tools/aarch64_lane.py

bench: $(VENV)/.stamp
	for b in benchmarks/*.py; do $(VENV)/bin/python $$b || exit 1; done

# Installs the Arm toolchain and QEMU when missing and we are root on a Debian-like system; otherwise says
# the one command to run (the tests that need them skip locally and fail under CI=true).
firmware-toolchain:
	@if command -v arm-none-eabi-gcc >/dev/null 2>&1 && command -v qemu-system-arm >/dev/null 2>&1 \
	    && test -f "$$(arm-none-eabi-gcc -mthumb -print-file-name=libc_nano.a)" \
	    && test -f "$$(arm-none-eabi-gcc -mthumb -print-file-name=libstdc++.a)"; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update && apt-get install -y $(FIRMWARE_APT); \
	else \
	    echo "firmware tests need the Arm toolchain and QEMU; install them with: sudo apt-get install -y $(FIRMWARE_APT)"; \
	fi

$(VENV)/.stamp: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(if $(TORCH_PIN),$(VENV)/bin/python -m pip install -q "$(TORCH_PIN)")
	$(VENV)/bin/python -m pip install -q -e ".[dev]"
	touch $@

$(ONNX2TF_VENV)/.stamp: Makefile
	test -x $(ONNX2TF_VENV)/bin/python || $(PYTHON) -m venv $(ONNX2TF_VENV)
	$(ONNX2TF_VENV)/bin/python -m pip install -q --upgrade pip
	$(ONNX2TF_VENV)/bin/python -m pip install -q $(ONNX2TF_PACKAGES)
	touch $@

$(PI_VENV)/.stamp: pyproject.toml Makefile
	test -x $(PI_VENV)/bin/python || $(PYTHON) -m venv $(PI_VENV)
	$(PI_VENV)/bin/python -m pip install -q --upgrade pip
	$(PI_VENV)/bin/python -m pip install -q $(PI_PACKAGES) pytest-xdist
	$(PI_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

clean:
	rm -rf $(VENV) $(PI_VENV) $(ONNX2TF_VENV) edgert-demo build *.egg-info
