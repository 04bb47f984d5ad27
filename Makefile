# Two entry points, each complete on a fresh machine:
#   make demo  - install ccobs (with uvloop and httptools) into .venv and run the demo
#                (mock upstream, proxy, load generator)
#   make test  - install test dependencies, the Debian binaries and the real clients (npm),
#                then run the whole suite
#   make bench - install wrk and valgrind when missing, run the benchmarks and the targets, and write
#                benchmarks/RESULTS.md
#   make generate - regenerate every committed generated file (the drift tests name it)
#   make bench-streams - thousands of concurrent slow streams through ccobs proxy (minutes)
#   make bench-proxy-instructions - the proxy's addition over a bare pass-through (callgrind)
#   make bench-streams-limit - ramp streams through 1 and 2 workers until they break (~10 min)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install debian-deps npm-clients bench generate bench-streams \
	bench-proxy-instructions bench-streams-limit

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,server]'
	touch $@

install: $(VENV)/.installed

debian-deps:
	scripts/install-debian-deps.sh

npm-clients:
	scripts/install-npm-clients.sh

demo: install
	$(BIN)/ccobs demo

lint: install
	$(BIN)/ruff check ccobs tests scripts
	$(BIN)/ruff format --check ccobs tests scripts
	$(BIN)/mypy

test: install debian-deps npm-clients lint
	$(BIN)/python -m pytest

# Every committed generated file, from its source in code: dashboards/ and alerts/
# (ccobs/mixin), stack/prometheus.yml (ccobs/stack/compose.py) and the reference
# tables (scripts/sync_readme.py). A drift test fails until this has been run.
generate: install
	$(BIN)/ccobs mixin build --out .
	$(BIN)/python -m ccobs.stack.compose .
	$(BIN)/python scripts/sync_readme.py

bench: install
	scripts/install-debian-deps.sh bench
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.targets

# Not part of `make bench`: each takes minutes. Both write their figures to stdout;
# bench-streams also rewrites its part of benchmarks/RESULTS.md.
bench-streams: install
	$(BIN)/python -m benchmarks.streams

bench-streams-limit: install
	$(BIN)/python -m benchmarks.streams --find-limit --metrics-listener

bench-proxy-instructions: install
	scripts/install-debian-deps.sh bench
	$(BIN)/python -m benchmarks.proxy_instructions
