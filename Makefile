# make site   build the whole site from site_config/site.yml (creates .venv on first use)
# make test   run the test suite
# make bench  run the benchmarks (by hand; prints medians and ratios)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
READY  := $(VENV)/.ready

.PHONY: site test bench serve clean

$(READY): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(READY)

site: $(READY)
	$(PY) -m generator build

test: $(READY)
	$(PY) -m pytest -q

bench: $(READY)
	for script in bench/bench_*.py; do $(PY) $$script || exit 1; done

serve: $(READY)
	$(PY) -m generator serve

clean:
	rm -rf build site
