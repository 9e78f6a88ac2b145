# One command to set up and run the main job (`make demo`), one to run the tests (`make test`).
# Everything installs into ./.venv from PyPI (torch comes from the local wheel cache where the
# machine has one).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NS := $(VENV)/bin/normstyle

.PHONY: setup demo test test-slow test-gimp bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch torchvision
	$(PY) -m pip install -q -e ".[train,test,demo,ray]"
	touch $@

demo: setup
	$(NS) demo --out demo-out --overwrite

# The bf16 tests run again on oneDNN's AVX-512 bf16 path: where the CPU has AMX, that is a
# second code path with other rounding, so a bound tuned to one CPU kind fails here first.
test: setup
	$(PY) -m pytest
	ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 $(PY) -m pytest -q -m "bf16 and not slow"

test-slow: setup
	$(PY) -m pytest -m slow

bench: setup
	$(PY) benchmarks/speed.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
