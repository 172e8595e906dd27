# `make run` starts the dashboard, `make test` checks lint and format, then runs the whole test suite; both set up .venv first
# (with requirements-dev.txt, which includes requirements-ray.txt, so the Ray tests run on a local Ray).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test lint simulate benchmark browser clean

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-ray.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(PY) -m streamlit run dashboard/serve.py --server.port $(PORT)

simulate: $(VENV)/.installed
	$(PY) -m flcore run

test: $(VENV)/.installed browser lint
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

benchmark: $(VENV)/.installed
	$(PY) benchmarks/engine.py

# The browser test drives Debian's chromium; install it when missing and we may.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && apt-get install -y -q chromium; \
	  else \
	    echo "The browser test needs chromium: run 'sudo apt-get install chromium' (Debian/Ubuntu), then 'make test' again."; exit 1; \
	  fi; }

clean:
	rm -rf $(VENV) .pytest_cache test-output
