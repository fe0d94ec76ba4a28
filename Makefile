# ipkit: `make figures` regenerates every study's figures; `make test` runs the test suite.
# Both first create .venv with python3 and install ipkit with the tested versions pinned
# in constraints.txt (a torch + torchvision pair that imports on a CPU-only machine).

PYTHON ?= python3
VENV   ?= .venv
PROFILE ?= default
JOBS   ?= 2
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ipkit-installed
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json

.PHONY: setup chromium figures test quick lint docs smoke bench lab clean course dashboard

setup: $(STAMP) $(LAB_SETTINGS) chromium

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,ray,reference,docs,course,lint]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipkit)" >/dev/null
	touch $(STAMP)

# JupyterLab in this venv saves widget state with the notebook, so a saved Explore panel
# shows its figure when reopened (a settings override inside the venv, not in $HOME).
$(LAB_SETTINGS): | $(STAMP)
	mkdir -p $(dir $@)
	echo '{"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": true}}' > $@

# The browser test drives Debian's chromium; installed only when running as root (CI).
chromium:
	@if [ "$$(id -u)" = 0 ] && ! command -v chromium >/dev/null; then \
	  (apt-get update && apt-get install -y chromium) || echo "chromium not installed: the browser test will be skipped"; fi

figures: setup  ## run every study notebook (PROFILE=default|smoke|paper) and rebuild figures/README.md
	$(BIN)/ipkit run all --profile $(PROFILE) --jobs $(JOBS)
	$(BIN)/ipkit report

test: setup lint  ## lint, unit tests, then every notebook end to end in the smoke profile (nbmake)
	$(BIN)/python -m pytest tests notebooks --nbmake --nbmake-timeout=900 --durations=40

quick: setup  ## the inner loop: unit tests without the slow end-to-end and browser ones, on every core (pytest-xdist)
	$(BIN)/python -m pytest tests -m "not slow and not browser" -n auto -q

lint: setup  ## ruff (lint rules, formatting) and mypy (types of ipkit/), as pyproject.toml sets them; nothing rewritten
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy

docs: setup  ## build the documentation site offline into docs/_build/html (warnings are errors)
	$(BIN)/ipkit report --html docs/_build/html

bench: setup  ## ipkit trainer vs a plain DataLoader loop
	$(BIN)/ipkit bench

lab: setup  ## open the notebooks in JupyterLab
	$(BIN)/jupyter lab notebooks

LESSONS := $(basename $(notdir $(wildcard course/lessons/*.ipynb)))
STUDY ?= quickstart
PORT ?= 8866

course: setup  ## otter assign every lesson into dist/course/<lesson>/ (student, autograder zip, instructor copy)
	@for n in $(LESSONS); do \
	  rm -rf dist/course/$$n && \
	  $(BIN)/otter assign --no-run-tests course/lessons/$$n.ipynb dist/course/$$n >/dev/null && \
	  mkdir -p dist/course/$$n/instructor && cp dist/course/$$n/autograder/$$n.ipynb dist/course/$$n/instructor/ && \
	  echo "dist/course/$$n: student/, autograder/ (zip), instructor/" || exit 1; \
	done

dashboard: setup  ## a study's Explore panel as a Voila app, code hidden (STUDY=quickstart PORT=8866)
	$(BIN)/voila course/apps/$(STUDY).ipynb --port=$(PORT) --no-browser --strip_sources=True

clean:  ## remove executed notebooks (runs/); the model cache stays (ipkit cache clear)
	rm -rf runs .pytest_cache
