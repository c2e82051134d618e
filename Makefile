# The two commands of the README:
#   make demo   set up, compile the default example and show what it produced
#   make test   set up and run every test (what CI runs); as root, that includes the end-to-end
#               tests on a real Kubernetes cluster (`make e2e`), which need root
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup demo test lint pytest native golden bench bench-kv bench-raft bench-tasks nemesis

setup:
	bash .ci/setup

# Compiles every spec of pyagent.toml, shows the default example's Kubernetes stack, then runs
# the same swarm locally as real node processes on loopback (building pyagent-node with cargo
# on first use) and shows it healthy, then runs one task on it (the `triage` manifest) and prints
# its result. It is left running: `.venv/bin/pyagent down stacks/laptop/local`.
demo: setup
	$(VENV)/pyagent compile
	$(VENV)/pyagent validate examples/laptop/swarm.yaml
	@echo "--- stacks/laptop/dev (Pulumi stack and manifests):" && find stacks/laptop/dev -type f | sort
	$(VENV)/pyagent down stacks/laptop/local
	$(VENV)/pyagent up --local stacks/laptop/local
	$(VENV)/pyagent status stacks/laptop/local
	@echo "--- a task on the swarm: reproduce the bug of examples/laptop/buggy in the sandbox, outline it on another core:"
	$(VENV)/pyagent run stacks/laptop/local triage --input source=@examples/laptop/buggy/calc.py --input tests=@examples/laptop/buggy/test_calc.py --wait

lint:
	$(VENV)/ruff check pyagent_compile tests benchmarks
	$(VENV)/ruff format --check pyagent_compile tests benchmarks
	$(VENV)/mypy
	$(VENV)/pyagent compile --check

native:
	bash native/check.sh

pytest:
	$(VENV)/pytest

test: setup lint native pytest e2e-when-root

# Root is what the test cluster needs (namespaces, mounts, cgroups, nftables); without it `make test`
# says so and runs everything else.
.PHONY: e2e-when-root
e2e-when-root:
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory e2e; \
	else echo "e2e: not run: the test cluster needs root (docs/cluster.md); run \`make e2e\` as root"; fi

# Regenerate the committed stacks and golden files after an intended change; review the diff.
golden: setup
	$(VENV)/pyagent compile
	$(VENV)/pyagent schema > specs/swarm.schema.json
	$(VENV)/pyagent schema --scenario > specs/scenario.schema.json
	$(VENV)/python -c 'from pyagent_compile.contracts.node_config import json_schema; print(json_schema(), end="")' > specs/node-config.schema.json
	$(VENV)/python -m pyagent_compile.model.cue_schema --write

bench: setup
	$(VENV)/python benchmarks/compile_bench.py

# KV_v2 against vLLM's BlockPool and SGLang's RadixCache, fetched into .bench-cache/ on first use
# (SGLang needs torch with its CUDA libraries, about 5 GB, in .bench-cache/sglang-venv; runs on CPU).
bench-kv: setup
	$(VENV)/python benchmarks/fetch_vllm.py
	$(VENV)/python benchmarks/fetch_sglang.py
	$(VENV)/python benchmarks/kv_v2.py

# pyagent's Raft against etcd 3.4 (installed with apt-get if missing), same machine, same run.
bench-raft: setup
	$(VENV)/python benchmarks/raft.py

# pyagent's tasks on a 3-node local swarm against Ray 2.40.0's (ray.init(num_cpus=2)), same run;
# Ray goes into .bench-cache/ray-venv with pip on first use, never into .venv.
bench-tasks: setup
	$(VENV)/python benchmarks/tasks.py

# The nemesis for longer than CI runs it.
nemesis: setup
	PYAGENT_NEMESIS_SEEDS=50 PYAGENT_NEMESIS_SECONDS=20 PYAGENT_NEMESIS_DISK_SEEDS=20 PYAGENT_NEMESIS_DISK_SECONDS=20 \
		$(VENV)/pytest tests/integration/test_nemesis.py

# issue 16, part 4: a real single-node Kubernetes from real parts (docs/cluster.md). Root only.
# cluster-tools builds Kubernetes v1.34.4, etcd, CoreDNS, crictl and local-path-provisioner from the Go proxy into
# .tools/<name>-<version>/ (about 10 minutes cold on 2 cores) and installs containerd, runc, the CNI
# plugins, nftables, umoci and skopeo from Debian. cluster-up prints `export ...` lines (KUBECONFIG etc.);
# the state is in .tools/cluster-state/ unless PYAGENT_CLUSTER_STATE names another folder.
.PHONY: cluster-tools cluster-up cluster-down cluster-test

cluster-tools: setup
	$(VENV)/python -m tests.e2e.cluster tools

cluster-up: cluster-tools
	$(VENV)/python -m tests.e2e.cluster up

cluster-down:
	$(VENV)/python -m tests.e2e.cluster down

# The cluster's own end-to-end test: uses the cluster of cluster-up (or of $PYAGENT_CLUSTER_STATE) when it
# is up; otherwise brings one up in a temporary folder, tests it and its faults, brings it down and checks
# that nothing is left.
cluster-test: cluster-tools
	PYAGENT_E2E=1 $(VENV)/pytest tests/e2e/cluster -v

# The node image, built without a Docker engine and reproducibly (docs/node-image.md): needs root and
# Debian's umoci. Writes native/target/image/oci/ (OCI layout), native/target/image/pyagent-node.oci.tar
# (`ctr -n k8s.io images import --base-name ghcr.io/pyagent/pyagent-node --digests <it>`) and the lock
# that `image: {build: native}` pins: commit native/image/pyagent-node.lock.json, then `make golden`.
# `image-check` rebuilds and fails if the committed lock is not what the build gives; `image-test`
# runs the built image under runc (non-root, no capabilities, read-only root); `image-repro` builds
# HEAD in two clones in two folders and compares the results byte for byte (two cold builds).
.PHONY: image image-check image-test image-repro
image:
	python3 native/image/build.py

image-check:
	python3 native/image/build.py --check

image-test: setup image
	$(VENV)/pytest tests/test_node_image.py

image-repro:
	python3 native/image/reproduce.py

# issues 16 and 20: every compiled stack of the examples on the test cluster, from the node image built
# here, deployed by `pulumi up` of the real engine and by `kubectl apply` (tests/e2e/test_swarms.py), the
# engine's own tests with the CrossGuard pack (tests/e2e/test_pulumi.py), and the cluster's own tests.
# Root only; docs/kubernetes.md, docs/pulumi.md.
.PHONY: e2e
e2e: cluster-tools pulumi-tools
	PYAGENT_E2E=1 $(VENV)/pytest tests/e2e -v -s

# issue 20: the real Pulumi engine (docs/pulumi.md). pulumi-tools builds the Pulumi CLI v3.276.0 and the
# Kubernetes provider from the Go module proxy into .tools/<name>-<version>/ (15 to 25 minutes cold on
# 2 busy cores) and reports what the proxy answers for the Python language host. pulumi-test runs only
# tests/e2e/test_pulumi.py (part of e2e): preview, up, preview, destroy of stacks/laptop/dev and the
# CrossGuard pack with its waivers, against its own etcd + kube-apiserver + kube-controller-manager on
# loopback (cluster-tools' Kubernetes and etcd builds, which the test makes itself when they are missing;
# no Debian package and no root are needed).
.PHONY: pulumi-tools pulumi-test

pulumi-tools: setup
	$(VENV)/python -m tests.e2e.pulumi tools

pulumi-test: pulumi-tools
	PYAGENT_E2E=1 $(VENV)/pytest tests/e2e/test_pulumi.py -v
