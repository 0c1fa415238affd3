# Two commands on a fresh machine with Python 3.10+: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch; a plain requirement could pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps zennit==0.5.1
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/provgraph demo --out out/demo

test: $(STAMP)
	$(BIN)/pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out build *.egg-info
