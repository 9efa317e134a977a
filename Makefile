# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv when missing and install the package with its test extras.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU build first: a looser torch requirement would pull several GB of CUDA packages
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# the suite on every core (pytest-xdist); a test file stays on one worker, so its compiled models are shared
test: $(STAMP)
	$(PY) -m pytest tests -n auto --dist loadfile

# the long fuzz run of docs/reliability.md (about 15 minutes on two busy cores); FUZZ_ARGS="--scale 0.1" for less
fuzz: $(STAMP)
	$(PY) -m fuzz.run $(FUZZ_ARGS)

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
