# Two commands do all set-up: `make demo` and `make test` (both install first).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synth-installed

.PHONY: install demo test lint bench-load clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@# No torch yet: take 2.13.0 (the CPU wheel on CPU-only machines, a normal build elsewhere),
	@# so that resolving our unpinned `torch` requirement does not pull several GB of CUDA packages.
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: install
	$(VENV)/bin/synth demo --out synth-demo --overwrite

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check synth evaluation tests benchmarks

bench-load: install
	$(PY) benchmarks/load_ptbxl.py

clean:
	rm -rf $(VENV) synth-demo .pytest_cache
