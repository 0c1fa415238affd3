# Two commands on a fresh machine with Python 3.10+: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch, pinned in every install that could upgrade it (timm requires
# torchvision, whose newest release would otherwise pull a newer, multi-GB CUDA torch).
TORCH_PIN := torch==2.13.0

.PHONY: install demo test lint docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet $(TORCH_PIN) -e ".[test,docs]"
	$(BIN)/python -m pip install --quiet --no-deps zennit==0.5.1
	$(BIN)/python -m pip install --quiet --no-deps quantus==0.6.0
	$(BIN)/python -m pip install --quiet --no-deps lxt==2.1
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/provgraph demo --out out/demo

test: $(STAMP)
	$(BIN)/pytest -q -n 2

# API reference from the numpydoc docstrings; any Sphinx warning fails the build
docs: $(STAMP)
	rm -rf docs/_autosummary
	$(BIN)/python docs/make_api_index.py
	$(BIN)/python -m sphinx -b html -W --keep-going -q docs docs/_build/html

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out build *.egg-info docs/_build docs/_autosummary docs/api.rst
