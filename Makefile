# The two commands a new user needs: `make demo` and `make test`.
# Both build their own virtual environments from pyproject.toml; nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
# What a Raspberry Pi user installs: tflite-runtime + numpy<2, no TensorFlow, no ai-edge-litert.
PI_VENV := .venv-tflite-runtime
PI_PACKAGES := "tflite-runtime==2.14.*" "numpy<2" pillow pyserial flatbuffers tflite pytest

.PHONY: demo test test-main test-tflite-runtime bench clean

demo: $(VENV)/.stamp
	$(VENV)/bin/edgert demo

test: test-main test-tflite-runtime

test-main: $(VENV)/.stamp
	$(VENV)/bin/python -m pytest -q

test-tflite-runtime: $(PI_VENV)/.stamp
	$(PI_VENV)/bin/python -m pytest -q -m runtime -p no:cacheprovider

bench: $(VENV)/.stamp
	for b in benchmarks/*.py; do $(VENV)/bin/python $$b || exit 1; done

$(VENV)/.stamp: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[dev]"
	touch $@

$(PI_VENV)/.stamp: pyproject.toml
	test -x $(PI_VENV)/bin/python || $(PYTHON) -m venv $(PI_VENV)
	$(PI_VENV)/bin/python -m pip install -q --upgrade pip
	$(PI_VENV)/bin/python -m pip install -q $(PI_PACKAGES)
	$(PI_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

clean:
	rm -rf $(VENV) $(PI_VENV) edgert-demo build *.egg-info
