# The two set-up commands (see README): `make demo` and `make test`.
# Both install everything they need on a fresh Debian host: the venv and its pinned
# dependencies, a Docker engine if none answers, and the stack's images built from
# Debian packages (no registry needed). Set STACKCTL_IMAGES=official to use the
# official images from a registry instead.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACKCTL := $(BIN)/stackctl
STACKCTL_IMAGES ?= local
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: venv engine images demo demo-down test lint clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python requirements/lock.txt pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(VENV)/.installed

engine: venv
	$(STACKCTL) engine ensure

images: engine
ifeq ($(STACKCTL_IMAGES),local)
	$(STACKCTL) images build
endif

demo: images
	bash scripts/demo.sh

demo-down: venv
	$(STACKCTL) down --yes

# venv, engine, images, lint, unit and render, real-engine: each phase timed (scripts/test.sh)
test:
	bash scripts/test.sh $(PYTEST_ARGS)

# The benchmarks (about 20 minutes; see bench/README.md). BENCH_ARGS=--quick for a smoke run.
bench: images
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: venv
	$(BIN)/ruff check stackctl tests
	$(BIN)/mypy stackctl

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
