# Set-up and entry points. `make run` starts the arena server; `make test` runs the test suite.
VENV ?= .venv
PYTHON_CANDIDATES ?= python3.13 python3.12 /root/.pyenv/versions/3.13.0/bin/python3.13 /root/.pyenv/versions/3.12.1/bin/python3.12 python3
# The newest Python >= 3.12 that actually runs (pyenv shims can exist and still fail).
PYTHON := $(shell for p in $(PYTHON_CANDIDATES); do \
	if $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then echo $$p; break; fi; done)

.PHONY: run test lint clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found (tried: $(PYTHON_CANDIDATES))"; exit 2; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev,local]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/arena serve --house random,first

test: $(VENV)/.installed
	$(VENV)/bin/ruff check arena games agents migrations tests benchmarks
	$(VENV)/bin/pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) arena.db arena.db-wal arena.db-shm
