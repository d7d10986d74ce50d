# Every target installs what it needs into .venv first, so each works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/batch-enroll demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check batch_enroll tests $(wildcard bench)
	$(VENV)/bin/ruff format --check batch_enroll tests $(wildcard bench)
	$(VENV)/bin/mypy
	$(VENV)/bin/deptry .
	$(PY) -m pytest -q -p no:cacheprovider tests/test_api.py

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) results bench/out .pytest_cache .mypy_cache .ruff_cache
