# The two commands of the README:
#   make demo   set up, compile the default example and show what it produced
#   make test   set up and run every test (what CI runs)
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup demo demo-local test lint pytest native golden bench bench-raft nemesis

setup:
	bash .ci/setup

demo: setup
	$(VENV)/pyagent compile
	$(VENV)/pyagent validate examples/laptop/swarm.yaml
	@echo "--- stacks/laptop/dev:" && find stacks/laptop/dev -type f | sort

lint:
	$(VENV)/ruff check pyagent_compile tests benchmarks
	$(VENV)/ruff format --check pyagent_compile tests benchmarks
	$(VENV)/mypy
	$(VENV)/pyagent compile --check

native:
	bash native/check.sh

pytest:
	$(VENV)/pytest

test: setup lint native pytest

# Regenerate the committed stacks and golden files after an intended change; review the diff.
golden: setup
	$(VENV)/pyagent compile
	$(VENV)/pyagent schema > specs/swarm.schema.json

bench: setup
	$(VENV)/python benchmarks/compile_bench.py

# The default example as real processes on loopback (builds pyagent-node with cargo if needed),
# left running and shown healthy; `pyagent down stacks/laptop/local` stops it. To be appended
# to `make demo`.
demo-local: setup
	$(VENV)/pyagent compile
	$(VENV)/pyagent down stacks/laptop/local
	$(VENV)/pyagent up --local stacks/laptop/local
	$(VENV)/pyagent status stacks/laptop/local

# pyagent's Raft against etcd 3.4 (installed with apt-get if missing), same machine, same run.
bench-raft: setup
	$(VENV)/python benchmarks/raft.py

# The nemesis for longer than CI runs it.
nemesis: setup
	PYAGENT_NEMESIS_SEEDS=50 PYAGENT_NEMESIS_SECONDS=20 $(VENV)/pytest tests/integration/test_nemesis.py
