# musicark — build, test and demo on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEBIAN_PACKAGES := sqlite3 ffmpeg libchromaprint1 libchromaprint-tools aria2 opentracker \
	qbittorrent-nox mktorrent chromium wrk zstd
STAMP_DEB := $(VENV)/.debian-stamp
STAMP_PY := $(VENV)/.python-stamp
# npm packages the tests use (axe-core), installed into ./node_modules from package-lock.json
STAMP_NPM := node_modules/.musicark-stamp
DEMO_DIR ?= demo-archive

.PHONY: all setup demo test test-all bench bench-scale lint typecheck clean

all: test

$(STAMP_DEB):
	@mkdir -p $(VENV)
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

$(STAMP_PY): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

$(STAMP_NPM): package.json package-lock.json $(STAMP_DEB)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(STAMP_DEB) $(STAMP_PY) $(STAMP_NPM)

demo: setup
	$(BIN)/python -m musicark.demo --dir $(DEMO_DIR)

test: setup
	$(BIN)/ruff check musicark tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q

test-all: setup
	$(BIN)/ruff check musicark tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q -m ''

bench: setup
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	@for b in benchmarks/bench_*.py; do [ $$b = benchmarks/bench_scale.py ] && continue; echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The whole pipeline at N tracks (default 50 M): per-stage wall, CPU, peak RSS, disk, and
# benchmarks/scale.md extrapolated to 256 M tracks. Long; not part of `make test`.
N ?= 50000000
bench-scale: setup
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_scale.py --n $(N)

lint: setup
	$(BIN)/ruff check musicark tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info node_modules
