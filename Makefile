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
	$(PY) -m pip install -q -e ".[train,test,demo]"
	touch $@

demo: setup
	$(NS) demo --out demo-out

test: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

bench: setup
	$(PY) benchmarks/speed.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
