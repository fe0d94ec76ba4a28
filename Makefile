# ipkit: `make figures` regenerates every study's figures; `make test` runs the test suite.
# Both first create .venv with python3 and install ipkit with the tested versions pinned
# in constraints.txt (a torch + torchvision pair that imports on a CPU-only machine).

PYTHON ?= python3
VENV   ?= .venv
PROFILE ?= default
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ipkit-installed

.PHONY: setup figures test smoke bench lab clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,reference]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipkit)" >/dev/null
	touch $(STAMP)

figures: setup  ## run every study notebook (PROFILE=default|smoke|paper) and rebuild figures/README.md
	$(BIN)/ipkit run all --profile $(PROFILE)
	$(BIN)/ipkit report

test: setup  ## unit tests, then every notebook end to end in the smoke profile (nbmake)
	$(BIN)/python -m pytest tests notebooks --nbmake --nbmake-timeout=900

bench: setup  ## ipkit trainer vs a plain DataLoader loop
	$(BIN)/ipkit bench

lab: setup  ## open the notebooks in JupyterLab
	$(BIN)/jupyter lab notebooks

clean:  ## remove executed notebooks (runs/); the model cache stays (ipkit cache clear)
	rm -rf runs .pytest_cache
