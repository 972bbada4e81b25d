# ioin-fleet — the two set-up commands are `make demo` and `make test`; both bootstrap themselves.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
SRC   := agent controller aggregator tests bench tools

.PHONY: all bootstrap demo test check fmt proto guests bench clean fuzz

all: test

bootstrap:
	@tools/bootstrap.sh

guests: bootstrap
	@if [ -d agent/backends/kvm/guests ]; then $(PY) -m agent.backends.kvm.guests.build; fi
	@$(PY) -c 'from agent.backends.kvm.fast import main; main()'  # the vCPU loop's C fast path

demo: bootstrap guests
	$(PY) tools/demo.py

check: bootstrap
	$(VENV)/bin/ruff check $(SRC)
	$(VENV)/bin/ruff format --check $(SRC)
	$(VENV)/bin/mypy

fmt: bootstrap
	$(VENV)/bin/ruff check --fix $(SRC)
	$(VENV)/bin/ruff format $(SRC)

test: bootstrap guests check
	$(PY) -m pytest $(PYTEST_ARGS)

# The fuzz targets for minutes (FUZZ_SECONDS each, default 60); `make test` runs them briefly.
fuzz: bootstrap
	IOIN_FUZZ_SECONDS=$${FUZZ_SECONDS:-60} $(PY) -m pytest tests/fuzz -q --timeout=0

proto: bootstrap
	$(PY) tools/genproto.py

bench: bootstrap guests
	$(PY) bench/run.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
