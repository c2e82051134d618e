# The two commands of the README:
#   make demo   set up, compile the default example and show what it produced
#   make test   set up and run every test (what CI runs)
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup demo test lint pytest native golden bench

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
