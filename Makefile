# Squidie's two commands: `make demo` runs a real workflow, `make test` runs everything.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# The suite runs on two pytest-xdist processes (one per core of the 2-core CI machine):
# about half the serial time. PYTEST_JOBS=0 runs it in one process.
PYTEST_JOBS ?= 2

.PHONY: demo test lint typecheck unit soak bench bench-micro docs clean

$(STAMP): pyproject.toml docs/examples/thirdparty_store/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e docs/examples/thirdparty_store
	@# The dashboard's browser tests drive Debian's Chromium through its chromedriver.
	@if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } \
	    && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver (dashboard browser tests)"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
	     >/dev/null 2>&1 \
	    || { apt-get update -qq >/dev/null 2>&1 \
	         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
	            >/dev/null; }) || echo "warning: could not install chromium" >&2; \
	fi
	touch $(STAMP)

## Run the seed's RingErrand end to end on the embedded store.
demo: $(STAMP)
	$(PY) docs/examples/ring_errand.py

## Lint, type-check and run the whole test suite (what CI runs).
test: lint typecheck unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_JOBS) $(PYTEST_ARGS)

## Long soak and chaos campaigns (not part of `make test`).
soak: $(STAMP)
	$(PY) -m pytest -m soak -p no:randomly $(PYTEST_ARGS)

## The documentation site, offline, into build/site (warnings are errors).
docs: $(STAMP)
	mkdir -p build && cp docs/mkdocs.yml build/mkdocs.yml
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --quiet --strict -f build/mkdocs.yml
	@echo "site: build/site/index.html"

## Benchmarks (measured, never asserted): W1-W3, backlog and ceilings on every reachable
## backend, peers side by side when the bench-peers extra is installed. BENCH_ARGS=--quick
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

## The pytest-benchmark micro-benchmarks (append, claim, commit per backend, a lone step on SQL; the fold, an encode and a job in memory).
bench-micro: $(STAMP)
	$(PY) -m pytest benchmarks --benchmark-enable $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info squidie-demo.db*
