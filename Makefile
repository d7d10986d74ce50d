# Every target installs what it needs into .venv first, so each works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install browser demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The page's browser tests drive Debian's headless Chromium. Install it when it is missing
# and apt can (root, or passwordless sudo); elsewhere those tests skip and say why.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "no apt-get: the browser tests will skip (install chromium and chromedriver)"; \
	else \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
		echo "installing chromium and chromium-driver for the browser tests"; \
		( $$SUDO apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver \
		  >/dev/null ) || echo "could not install chromium: the browser tests will skip"; \
	fi

demo: $(STAMP)
	$(VENV)/bin/batch-enroll demo

test: $(STAMP) browser
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
