# The two commands a new user runs (see README): `make demo` and `make test`.
# Both build .venv themselves, idempotently; a second run only re-installs when setup.py changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch and torchaudio are pinned here (not in setup.py) to the pair measured to work together.
TORCH_PINS := torch==2.14.1 torchaudio==2.11.0
PYTEST_ARGS ?=

.PHONY: venv demo test test-slow lint bench clean-venv

venv: $(STAMP)

$(STAMP): setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools<81" wheel
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e ".[all]" $(TORCH_PINS)
	touch $(STAMP)

demo: venv
	cd egs/mini2mix/TDANet && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ./run.sh

test: venv
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: venv
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: venv
	$(VENV)/bin/tdanet-bench --quick

clean-venv:
	rm -rf $(VENV)
