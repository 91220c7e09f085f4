# fastio: build, lint, test, bench.
#   make test   installs what is missing, builds, lints, runs cargo test and
#               pytest under the default asyncio loop and under uvloop.
#   make demo   runs examples/quickstart.py (no external service needed).
#   make bench  runs the side-by-side benchmarks in benches/.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: all system-deps venv build build-dev lint format test test-rust test-python demo bench clean

all: build

# PostgreSQL and MariaDB server binaries for the test harness (it starts
# throwaway servers from them), openssl for its TLS server's certificate,
# and venv support for Debian's python3.
system-deps:
	@missing=""; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="$$missing postgresql"; \
	  command -v mariadbd >/dev/null || test -x /usr/sbin/mariadbd || missing="$$missing mariadb-server"; \
	  command -v openssl >/dev/null || missing="$$missing openssl"; \
	  $(PYTHON) -c "import venv, ensurepip" 2>/dev/null || missing="$$missing python3-venv"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	      echo "installing:$$missing"; \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	    else \
	      echo "missing system packages:$$missing (run 'make system-deps' as root)"; exit 1; \
	    fi; \
	  fi

$(STAMP): requirements-dev.txt | system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

build: $(STAMP)
	$(VENV)/bin/maturin develop --release -q

# Faster edit-compile loop (no LTO); benchmarks need `make build`.
build-dev: $(STAMP)
	$(VENV)/bin/maturin develop -q

lint: $(STAMP)
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests benches examples
	$(VENV)/bin/ruff format --check python tests benches examples

format: $(STAMP)
	cargo fmt
	$(VENV)/bin/ruff format python tests benches examples
	$(VENV)/bin/ruff check --fix python tests benches examples

test-rust:
	cargo test --quiet

test-python: build
	FASTIO_TEST_LOOP=asyncio $(PYTEST) tests
	FASTIO_TEST_LOOP=uvloop $(PYTEST) tests

test: lint test-rust test-python

demo: build
	$(PY) examples/quickstart.py

bench: build
	$(PY) benches/run_all.py

clean:
	cargo clean
	rm -rf $(VENV)
