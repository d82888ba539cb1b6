# The course's commands. `make lab` opens the course; `make test` runs the whole suite (what CI runs);
# `make quick` the unit tests alone (no training processes, no notebooks); `make sweep` the long loops
# that `make test` leaves out. Each creates .venv and installs what is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.installed-test
LAB_ARGS ?=
PYTEST_ARGS ?=
GRADE_ARGS ?=
# The test suite runs lessons in their fast setting; `make test GPTCOURSE_FAST=0` runs them in full.
GPTCOURSE_FAST ?= 1

.PHONY: lab test quick sweep setup notebooks exercises grade doctor lint clean

lab: $(INSTALLED)
	$(BIN)/jupyter lab --notebook-dir="$(CURDIR)" $(LAB_ARGS) notebooks/00_setup.ipynb

# Markers (pyproject.toml): slow = real training processes and notebook runs; browser = JupyterLab in
# headless Chromium; sweep = loops of many seeds or launches (also counted as slow).
test: $(TEST_INSTALLED)
	GPTCOURSE_FAST=$(GPTCOURSE_FAST) $(BIN)/python -m pytest -m "not sweep" $(PYTEST_ARGS)

quick: $(TEST_INSTALLED)
	GPTCOURSE_FAST=$(GPTCOURSE_FAST) $(BIN)/python -m pytest -m "not slow and not browser and not sweep" $(PYTEST_ARGS)

sweep: $(TEST_INSTALLED)
	GPTCOURSE_FAST=$(GPTCOURSE_FAST) $(BIN)/python -m pytest -m sweep $(PYTEST_ARGS)

setup: $(INSTALLED)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name gptcourse --display-name "Python (gptcourse)"
	touch $@

$(TEST_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

# Execute every lesson and solution top to bottom and save the outputs (what is committed).
notebooks: $(INSTALLED)
	$(BIN)/python -m gptcourse notebooks

# Regenerate exercises/ from solutions/ (an exercise you have already run is kept; see --force).
exercises: $(INSTALLED)
	$(BIN)/python -m gptcourse exercises

# Grade exercise notebooks in fresh kernels, on copies: a table per notebook and a total.
# `make grade GRADE_ARGS=exercises/03_masked_self_attention.ipynb` grades one.
grade: $(INSTALLED)
	$(BIN)/python -m gptcourse grade $(GRADE_ARGS)

doctor: $(INSTALLED)
	$(BIN)/python -m gptcourse doctor

lint: $(TEST_INSTALLED)
	$(BIN)/ruff check gptcourse tests

clean:
	rm -rf $(VENV) out runs .pytest_cache
