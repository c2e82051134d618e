"""Synthetic swarm specs of N node pools, with firewall rules and logic manifests in
proportion, for the compiler benchmarks (YAML here; the CUE benchmark reuses the data)."""

from __future__ import annotations

from typing import Any

GPU_MODELS = ("H100-80GB", "A100-80GB", "L40S-48GB", "L4-24GB")
OWNER_KEY = "ed25519:3XqTtZc1hYk9sVv1o8mWb0rW8kq1mJ4m0yQ0e3B1kXc="


def _pool(i: int, cores: int) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "replicas": 3 if i == 0 else 1 + i % 4,
        "roles": ["voter", "worker"] if i == 0 else ["worker"],
        "hardware": {
            "cpu": 4 + i % 8,
            "memory": f"{16 + i % 4 * 16}Gi",
            "storage": "50Gi",
            "storageClass": "encrypted-ssd",
        },
        "placement": {
            "region": f"region-{i % 5}",
            "zones": [f"region-{i % 5}a", f"region-{i % 5}b"],
            "jurisdiction": "EU",
        },
        "cores": [f"core-{i % cores}", f"core-{(i + 1) % cores}"],
    }
    if i % 3 == 1:
        pool["hardware"]["gpu"] = {"model": GPU_MODELS[i % len(GPU_MODELS)], "count": 1 + i % 2}
    return pool


def _core(i: int) -> dict[str, Any]:
    return {
        "description": f"synthetic core {i}",
        "tools": [
            {"name": "git", "command": ["mcp-server-git"]},
            {"name": "search", "transport": "http", "url": f"http://search-{i}.example/mcp"},
        ],
        "model": {"name": f"model-{i}", "endpoint": f"http://model-{i}.example:8000/v1"},
        "resources": {"cpu": 1, "memory": "2Gi"},
    }


def _manifest(i: int, cores: int) -> dict[str, Any]:
    return {
        "core": f"core-{i % cores}",
        "inputs": {"repo": "string"},
        "outputs": {"result": {"type": "report", "from": "steps.reason"}},
        "steps": [
            {"id": "reproduce", "kind": "sandbox", "command": ["pytest"], "inputs": {"repo": "inputs.repo"}},
            {"id": "analyze", "kind": "analyze-trace", "inputs": {"trace": "steps.reproduce"}},
            {"id": "reason", "kind": "cort", "rounds": 3, "inputs": {"report": "steps.analyze"}},
            {"id": "commit", "kind": "mcp", "tool": "git.commit", "after": ["reason"]},
        ],
    }


def _rule(i: int, pools: int) -> dict[str, Any]:
    if i % 2:
        return {
            "name": f"rule-{i}",
            "from": {"pool": f"pool-{i}"},
            "to": {"pool": f"pool-{(i + 1) % pools}"},
            "ports": [{"port": 8000 + i % 1000}],
            "reason": "synthetic",
        }
    return {
        "name": f"rule-{i}",
        "from": {"pool": f"pool-{i}"},
        "to": {"cidrs": [f"10.{i // 256 % 256}.{i % 256}.0/24"]},
        "ports": [{"port": 443}],
        "reason": "synthetic egress",
    }


def generate_spec(pools: int) -> dict[str, Any]:
    """A valid spec of `pools` pools, pools/4 cores (at least 2), pools/2 manifests and pools rules."""
    cores = max(2, pools // 4)
    return {
        "apiVersion": "pyagent.dev/v1alpha1",
        "kind": "Swarm",
        "metadata": {"name": f"bench-{pools}", "owner": {"publicKey": OWNER_KEY}},
        "image": {"build": "native"},
        "nodes": {f"pool-{i}": _pool(i, cores) for i in range(pools)},
        "cores": {f"core-{i}": _core(i) for i in range(cores)},
        "manifests": {f"manifest-{i}": _manifest(i, cores) for i in range(max(1, pools // 2))},
        "memory": {"kv": {"capacity": {"gpuFraction": 0.5}}},
        "firewall": {"rules": [_rule(i, pools) for i in range(pools)]},
        "environments": {"dev": {}},
    }
